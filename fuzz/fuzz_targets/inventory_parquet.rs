#![no_main]

// The readers catch panics inside the Parquet/ORC decoders (third-party crates) and turn them into errors, so a
// caught panic there is no crash. libfuzzer-sys's hook aborts on every panic, caught or not: this one aborts only
// on a panic elsewhere (the project's code, std). A third-party panic the product does not catch still aborts, in
// libfuzzer-sys's own catch_unwind around each input. See fuzz/README.md.
libfuzzer_sys::fuzz_target!(
    init: { s3batch_inventory::fuzzing::abort_only_on_own_panics(); },
    |data: &[u8]| s3batch_inventory::fuzzing::parquet(data)
);
