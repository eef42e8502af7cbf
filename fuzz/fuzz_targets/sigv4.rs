#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| s3batch_api::fuzzing::sigv4(data));
