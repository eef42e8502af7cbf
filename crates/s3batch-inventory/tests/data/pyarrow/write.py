# Writes the Parquet files of this folder with pyarrow (Arrow C++, another writer than the parquet crate the tests
# write with): `python3 write.py .` (pyarrow 26). Read by `parquet_files_of_arrow_cpp_read` in ../../columnar.rs.
# `python3 write.py ../../../../../fuzz/corpus/inventory_parquet seeds` writes 12-row files of the same kinds as
# fuzz seeds (`seed-pyarrow-*`).
import pyarrow as pa, pyarrow.parquet as pq, os, sys
out = sys.argv[1]
seeds = sys.argv[2:] == ["seeds"]
os.makedirs(out, exist_ok=True)
n = 12 if seeds else 1500
keys = [f"dir/{i%37:02d}/obj-{i}" + "x" * (i * 7 % 61) for i in range(n)]
if not seeds:
    keys[234] = "k" * 1024
    keys[1345] = "é" * 512
versions = [None if i % 3 == 0 else f"v{i}" for i in range(n)]
sizes = [i * 11 for i in range(n)]
t = pa.table({
    "bucket": pa.array(["bkt"] * n, pa.string()),
    "key": pa.array(keys, pa.string()),
    "version_id": pa.array(versions, pa.string()),
    "size": pa.array(sizes, pa.int64()),
    "is_latest": pa.array([i % 2 == 0 for i in range(n)], pa.bool_()),
})
t = t.replace_schema_metadata(None)
codecs = ["zstd", "snappy", "gzip"]
i = 0
for version in ["1.0", "2.0"]:
    for enc in [None, "PLAIN", "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY"]:
        codec = codecs[i % 3]; i += 1
        kw = dict(data_page_version=version, compression=codec, data_page_size=128 if seeds else 2048,
                  row_group_size=6 if seeds else 1000,
                  store_schema=False, write_statistics=False)
        if enc is None:
            kw["use_dictionary"] = True
        else:
            kw["use_dictionary"] = False
            kw["column_encoding"] = {"bucket": enc, "key": enc, "version_id": enc}
        name = f"pyarrow-v{version[0]}-{(enc or 'dictionary').lower()}-{codec}"
        name = f"seed-{name}" if seeds else f"{name}.parquet"
        pq.write_table(t, os.path.join(out, name), **kw)
        md = pq.ParquetFile(os.path.join(out, name)).metadata
        print(name, os.path.getsize(os.path.join(out, name)), md.row_group(0).column(1).encodings, md.created_by)
