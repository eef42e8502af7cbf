#!/usr/bin/env python3
"""Writes the seed inputs of the text targets into fuzz/corpus/<target>/seed-*: request bodies, manifests and
configs taken from the project's tests and README (Parquet and ORC seeds are written by the ignored test
`write_fuzz_seeds` in crates/s3batch-inventory/tests/columnar.rs). Run from the repository root."""
import gzip
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def rust_const(path, name):
    """The text of `const NAME: &str = "..."` or `r#"..."#` in a Rust file."""
    src = read(path)
    m = re.search(r'const %s: &str =\s*r#"(.*?)"#;' % name, src, re.S)
    if m:
        return m.group(1)
    m = re.search(r'const %s: &str =\s*"((?:[^"\\]|\\.)*)";' % name, src, re.S)
    return m.group(1).encode().decode("unicode_escape")


def write(target, name, data):
    d = os.path.join(ROOT, "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- S3 Control XML: the unit tests' CreateJobRequest, with each operation, report and manifest generator.
create = rust_const("crates/s3batch-api/src/s3control.rs", "CREATE")
write("s3control_xml", "create", create)
ops = {
    "copy": "<S3PutObjectCopy><TargetResource>arn:aws:s3:::dst</TargetResource><StorageClass>STANDARD</StorageClass>"
    "<MetadataDirective>REPLACE</MetadataDirective><NewObjectMetadata><ContentType>text/plain</ContentType>"
    "<UserMetadata><entry><key>a</key><value>b</value></entry></UserMetadata></NewObjectMetadata>"
    "<NewObjectTagging><member><Key>k</Key><Value>v</Value></member></NewObjectTagging></S3PutObjectCopy>",
    "lambda": "<LambdaInvoke><FunctionArn>arn:aws:lambda:us-east-1:123456789012:function:f</FunctionArn>"
    "<InvocationSchemaVersion>2.0</InvocationSchemaVersion><UserArguments><entry><key>k</key><value>v</value>"
    "</entry></UserArguments></LambdaInvoke>",
    "restore": "<S3InitiateRestoreObject><ExpirationInDays>1</ExpirationInDays><GlacierJobTier>BULK</GlacierJobTier>"
    "</S3InitiateRestoreObject>",
    "deltags": "<S3DeleteObjectTagging/>",
    "acl": "<S3PutObjectAcl><AccessControlPolicy><AccessControlList><Grants><member><Grantee><TypeIdentifier>id"
    "</TypeIdentifier><Identifier>abc</Identifier></Grantee><Permission>READ</Permission></member></Grants>"
    "<Owner><ID>abc</ID></Owner></AccessControlList></AccessControlPolicy></S3PutObjectAcl>",
    "legalhold": "<S3PutObjectLegalHold><LegalHold><Status>ON</Status></LegalHold></S3PutObjectLegalHold>",
    "retention": "<S3PutObjectRetention><BypassGovernanceRetention>true</BypassGovernanceRetention><Retention>"
    "<Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>"
    "</S3PutObjectRetention>",
    "replicate": "<S3ReplicateObject/>",
}
op_re = re.compile(r"<Operation>.*?</Operation>", re.S)
for name, op in ops.items():
    write("s3control_xml", "op-" + name, op_re.sub("<Operation>%s</Operation>" % op, create))
write(
    "s3control_xml",
    "report",
    create.replace(
        "<Report><Enabled>false</Enabled></Report>",
        "<Report><Bucket>arn:aws:s3:::rep</Bucket><Enabled>true</Enabled><Format>Report_CSV_20180820</Format>"
        "<Prefix>p</Prefix><ReportScope>AllTasks</ReportScope></Report>",
    ),
)
write(
    "s3control_xml",
    "generator",
    re.sub(
        r"<Manifest>.*?</Manifest>",
        "<ManifestGenerator><S3JobManifestGenerator><SourceBucket>arn:aws:s3:::src</SourceBucket>"
        "<EnableManifestOutput>false</EnableManifestOutput><Filter><KeyNameConstraint><MatchAnyPrefix>"
        "<member>a/</member></MatchAnyPrefix></KeyNameConstraint><ObjectSizeGreaterThanBytes>1"
        "</ObjectSizeGreaterThanBytes></Filter></S3JobManifestGenerator></ManifestGenerator>",
        create,
        flags=re.S,
    ),
)
write(
    "s3control_xml",
    "tagging",
    '<PutJobTaggingRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/"><Tags><member><Key>a</Key>'
    "<Value>&amp;&lt;&#65;</Value></member><member><Key>b</Key><Value></Value></member></Tags></PutJobTaggingRequest>",
)

# --- COS XML: the unit tests' SDK (Go) and documentation bodies.
write("cos_xml", "go", rust_const("crates/s3batch-api/src/cos/mod.rs", "GO_CREATE"))
write("cos_xml", "docs", rust_const("crates/s3batch-api/src/cos/mod.rs", "DOCS_CREATE"))
go = rust_const("crates/s3batch-api/src/cos/mod.rs", "GO_CREATE")
for name, op in {
    "delete": "<COSDeleteObject/>",
    "restore": "<COSInitiateRestoreObject><ExpirationInDays>1</ExpirationInDays><JobTier>Bulk</JobTier>"
    "</COSInitiateRestoreObject>",
    "tagging": "<COSPutObjectTagging><TagSet><COSTag><Key>k</Key><Value>v</Value></COSTag></TagSet>"
    "<TaggingDirective>Add</TaggingDirective></COSPutObjectTagging>",
}.items():
    write("cos_xml", "op-" + name, op_re.sub("<Operation>%s</Operation>" % op, go))

# --- SigV4 and q-sign: requests as the clients send them ("SIGN" asks the harness to sign them first), and ones
# signed by hand (wrong signatures, missing parts) at the harness's clock, 2023-11-14T22:13:20Z.
body = create
sig = "0" * 64
write("sigv4", "sign-create", "SIGN\nPOST /v20180820/jobs\nhost: 123456789012.localhost:8080\n"
      "x-amz-account-id: 123456789012\ncontent-type: application/xml\n\n" + body)
write("sigv4", "sign-list", "SIGN\nGET /v20180820/jobs?jobStatuses=Active&maxResults=10&nextToken=a%2Fb+c\n"
      "host: localhost:8080\nx-amz-account-id: 123456789012\nuser-agent: aws-cli/2\n\n")
write("sigv4", "sign-priority", "SIGN\nPOST /v20180820/jobs/abc/priority?priority=5\nhost: h\n"
      "x-amz-account-id: 123456789012\n\n")
auth = ("AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20231114/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + sig)
empty_sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
write("sigv4", "wrong-signature", "GET /v20180820/jobs\nhost: h\nx-amz-date: 20231114T221320Z\n"
      "x-amz-content-sha256: " + empty_sha + "\nauthorization: " + auth + "\n\n")
write("sigv4", "unsigned-payload", "POST /v20180820/jobs\nhost: h\nx-amz-date: 20231114T221320Z\n"
      "x-amz-content-sha256: UNSIGNED-PAYLOAD\nauthorization: " + auth + "\n\n<x/>")
write("sigv4", "unsigned", "GET /v20180820/jobs\nhost: h\n\n")
cos_path = "/jobs?jobStatuses=Active&maxResults=10"
write("qsign", "sign-create", "SIGN\nPOST /jobs\nhost: 1250000000.cos-control.ap-chengdu.myqcloud.com\n"
      "x-cos-appid: 1250000000\ncontent-type: application/xml\ncontent-md5: 1B2M2Y8AsgTpgAmY7PhCfg==\n\n" + go)
write("qsign", "sign-list", "SIGN\nGET " + cos_path + "&nextToken=a+b%2B\nhost: h:8080\nx-cos-appid: 1250000000\n\n")
qs = ("q-sign-algorithm=sha1&q-ak=AKIDFUZZ&q-sign-time=1699999940;1700003600&q-key-time=1699999940;1700003600"
      "&q-header-list=host;x-cos-appid&q-url-param-list=jobstatuses;maxresults&q-signature=" + "0" * 40)
write("qsign", "wrong-signature", "GET " + cos_path + "\nhost: h\nx-cos-appid: 1250000000\nauthorization: " + qs
      + "\n\n")
write("qsign", "presigned", "GET /jobs?" + qs.replace(";", "%3B") + "\nhost: h\n\n")
write("qsign", "long-window", "GET /jobs\nhost: h\nauthorization: " +
      qs.replace("1699999940;1700003600", "0;4102444800") + "\n\n")

# --- CSV manifests: a layout byte (see csv_manifest in crates/s3batch-engine/src/fuzzing.rs), then lines like the
# engine's tests write.
write("csv_manifest", "plain", b"\x20" + b'bkt,a\nbkt,"b,with comma"\nbkt,c\nbkt,d\nbkt,e')
write("csv_manifest", "versions", b"\x41" + b"bkt,a%20b+c,v1\r\nbkt,caf%C3%A9,v2\r\nbkt,%2B%25,3\r\n")
write("csv_manifest", "ignore", b"\x02" + b'x,bkt,k1\n"",bkt,"k""2"\n\ny,bkt,k3\n')
write("csv_manifest", "payload", b"\x64" + b"bkt,k1,\nbkt,k2,v\nbkt,\"q\"\"k\",\n")
write("csv_manifest", "key-last", b"\xe3" + b"k1,x,v1,bkt\nk%2Fz,,v2,bkt\n")

# --- gzip CSV inventory files: a flags byte, the fileSchema line, then lines as the inventory tests write them.
def quoted(*fields):
    return ",".join('"%s"' % f.replace('"', '""') for f in fields) + "\n"


tricky = quoted("my-bucket", "dir%2Fsub%2Ffile+with+spaces.txt", "10", "2024-01-02T03:04:05.000Z", "d41d8", "STANDARD")
tricky += quoted("my-bucket", "a%2Bb+c", "0", "2024-01-02T03:04:05.000Z", "e", "GLACIER")
write("inventory_csv_gz", "tricky", b"\x09" + b"Bucket, Key, Size, LastModifiedDate, ETag, StorageClass\n"
      + tricky.encode())
write("inventory_csv_gz", "versions", b"\x0d" + b"Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size\n"
      + (quoted("bkt", "k", "v1", "true", "false", "5") + quoted("bkt", "k", "", "false", "true", "")).encode())
write("inventory_csv_gz", "cos", b"\x0b" + b"Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass\n"
      + quoted("1250000000", "examplebucket", "a b", "3", "2024-01-02T03:04:05.000Z", "e", "STANDARD").encode())
write("inventory_csv_gz", "raw-gzip", b"\x08" + b"Bucket, Key\n"
      + gzip.compress(quoted("bkt", "x").encode(), mtime=0))
write("inventory_csv_gz", "bad-lines", b"\x01" + b"Bucket, Key, Size\n"
      + b'"bkt","a","-1"\n"Bad_Bucket","b","1"\n"bkt","%zz","1"\n"bkt","unclosed\n')

# --- manifest.json: the inventory tests' S3 (CSV, ORC, Parquet) and COS manifests.
for name in ["S3_CSV", "S3_ORC", "S3_PARQUET", "COS_CSV"]:
    write("inventory_manifest_json", name.lower(), rust_const("crates/s3batch-inventory/tests/manifest.rs", name))

# --- config: the README's example, and the config tests' environment variables.
readme = read("README.md")
start = readme.index("```toml\n[server]") + len("```toml\n")
example = readme[start:readme.index("```", start)].replace('"…"', '"x"')
write("config", "readme", example)
env = "\n%%env\n"
write("config", "env", "[server]\nlisten = \"0.0.0.0:9000\"\n" + env +
      "S3BATCH_ACCOUNTS__0__ACCOUNT_ID=123456789012\nS3BATCH_ACCOUNTS__0__ACCESS_KEY_ID=12345\n"
      "S3BATCH_ACCOUNTS__0__SECRET_ACCESS_KEY=987654321\nS3BATCH_ACCOUNTS__0__COS_APPID=1250000000\n"
      "S3BATCH_SERVER__DATABASE_URL=postgres://u:pw-77@db/x\nS3BATCH_ENGINE__CONCURRENCY=32\n"
      "S3BATCH_SERVER__ALLOWED_HOSTS=[\"a.example\", \"b\"]\n")
write("config", "bad-secret", env + "S3BATCH_ACCOUNTS__0__SECRET_ACCESS_KEY=12345678901\n"
      "S3BATCH_ACCOUNTS__0__ACCOUNT_ID=true\n")
