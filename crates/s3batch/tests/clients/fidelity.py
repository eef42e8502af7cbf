"""Programs written for AWS S3 Batch Operations, pointed at a running s3batch server: what they expect, checked.

Usage: fidelity.py plus|checksum|proxy-boto3|proxy-cli ENDPOINT ACCOUNT KEY SECRET OBJECTS_DIR

OBJECTS_DIR is the server's local object directory (<bucket>/<key> files). Exits 0 when every check passed and
prints "<mode>: ok"; prints what failed otherwise.

The proxy modes use no endpoint or region argument at all: the environment the test sets is the documented recipe
(AWS_ENDPOINT_URL_S3_CONTROL and HTTP_PROXY pointing at s3batch, a real region), exactly as a whole program would
run with it.
"""
import csv
import glob
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zlib

import boto3
from botocore.config import Config

MODE, ENDPOINT, ACCOUNT, KEY, SECRET, OBJECTS = sys.argv[1:7]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/batch"
REPORT = {"Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820", "Enabled": True,
          "Prefix": MODE, "ReportScope": "AllTasks"}


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def put(bucket, key, data):
    path = os.path.join(OBJECTS, bucket, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.md5(data).hexdigest()


def client():
    return boto3.client("s3control", region_name="snow", endpoint_url=ENDPOINT, aws_access_key_id=KEY,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))


def run_job(c, operation, manifest_lines, name):
    etag = put("manifests", f"{name}.csv", "".join(line + "\n" for line in manifest_lines).encode())
    manifest = {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": f"arn:aws:s3:::manifests/{name}.csv", "ETag": etag}}
    job_id = c.create_job(AccountId=ACCOUNT, Operation=operation, Manifest=manifest, Report=REPORT, Priority=10,
                          RoleArn=ROLE, ConfirmationRequired=False)["JobId"]
    deadline = time.time() + 30
    while True:
        job = c.describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]
        if job["Status"] in ("Complete", "Failed", "Cancelled"):
            break
        check(time.time() < deadline, f"job {job_id} is {job['Status']}")
        time.sleep(0.05)
    check(job["Status"] == "Complete", f"job {job_id}: {job}")
    return job_id, job


def report_rows(job_id):
    """Every row of the job's completion report, read the way a program reads AWS's: manifest.json, then results."""
    with open(os.path.join(OBJECTS, "reports", MODE, f"job-{job_id}", "manifest.json")) as f:
        top = json.load(f)
    rows = []
    for result in top["Results"]:
        with open(os.path.join(OBJECTS, result["Bucket"], result["Key"]), newline="") as f:
            rows += list(csv.reader(f))
    return rows


def run_plus():
    """CSV manifest keys are form-encoded, as S3 Inventory writes them and Python's quote_plus makes them."""
    from urllib.parse import quote_plus
    c = client()
    keys = ["my file.jpg", "a+b.jpg", "100%.jpg"]
    for k in keys:
        put("data", k, b"x")
    lines = [f"data,{quote_plus(k)}" for k in keys]
    check(lines == ["data,my+file.jpg", "data,a%2Bb.jpg", "data,100%25.jpg"], f"quote_plus: {lines}")
    lines += ["data,my%20file.jpg", "data,a+b.jpg"]  # %20 is a space too; a bare + is a space: `a b.jpg` (missing)
    op = {"S3PutObjectTagging": {"TagSet": [{"Key": "seen", "Value": "yes"}]}}
    job_id, job = run_job(c, op, lines, "plus")
    counts = job["ProgressSummary"]
    check((counts["NumberOfTasksSucceeded"], counts["NumberOfTasksFailed"]) == (4, 1), f"counts: {counts}")
    rows = {(r[1], r[3]) for r in report_rows(job_id)}
    want = {("my+file.jpg", "succeeded"), ("a%2Bb.jpg", "succeeded"), ("100%25.jpg", "succeeded"),
            ("my%20file.jpg", "succeeded"), ("a+b.jpg", "failed")}
    check(rows == want, f"report rows (keys as the manifest wrote them): {rows}")
    failed = [r for r in report_rows(job_id) if r[3] == "failed"][0]
    check(failed[4:6] == ["404", "NoSuchKey"], f"the bare + named `a b.jpg`, which does not exist: {failed}")
    print("plus: ok")


def run_checksum():
    """The S3 User Guide's compute-checksum report rows: AWS's keys, and AWS's failed-task shape."""
    c = client()
    data = b"123456789"
    etag = put("data", "sum.txt", data)
    op = {"S3ComputeObjectChecksum": {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"}}
    job_id, _ = run_job(c, op, ["data,sum.txt", "data,missing.txt"], "checksum")
    rows = {r[1]: r for r in report_rows(job_id)}
    ok = rows["sum.txt"]
    check(ok[3:6] == ["succeeded", "200", ""], f"succeeded row: {ok}")
    message = json.loads(ok[6])
    check(list(message)[:5] == ["checksum_base64", "etag", "checksumAlgorithm", "checksumType", "checksum_hex"],
          f"AWS's keys first, in AWS's order: {list(message)}")
    crc = zlib.crc32(data).to_bytes(4, "big")
    import base64
    check(message["checksum_base64"] == base64.b64encode(crc).decode(), f"base64: {message}")
    check(message["checksum_hex"] == crc.hex().upper(), f"upper-case hex: {message}")
    check(message["etag"] == etag, f"the object's ETag, unquoted: {message}")
    check((message["checksumAlgorithm"], message["checksumType"]) == ("CRC32", "FULL_OBJECT"), f"{message}")
    bad = rows["missing.txt"]
    check(bad[3:6] == ["failed", "200", "PermanentFailure"], f"failed row: {bad}")
    m = re.fullmatch(r'error details: (\{.*\})', bad[6])
    check(m is not None, f"error details: {bad[6]}")
    details = json.loads(m.group(1))
    check(details["errorCode"] == "404" and "NoSuchKey" in details["failureMessage"], f"details: {details}")
    check(', "errorCode": "404"}' in bad[6], f"AWS's spacing: {bad[6]}")
    print("checksum: ok")


def run_proxy_boto3():
    """A whole program: default session, no endpoint_url, a real region; only the environment points at s3batch."""
    for var in ("AWS_ENDPOINT_URL_S3_CONTROL", "HTTP_PROXY", "AWS_DEFAULT_REGION"):
        check(os.environ.get(var), f"{var} is set by the recipe")
    session = boto3.session.Session()
    s3control = session.client("s3control")
    s3 = session.client("s3")
    check(session.region_name == "us-east-1", f"a real region: {session.region_name}")
    check(s3.meta.endpoint_url.startswith("https://s3."), f"other clients keep AWS: {s3.meta.endpoint_url}")
    put("data", "proxied", b"x")
    etag = put("manifests", "proxy.csv", b"data,proxied\n")
    job_id = s3control.create_job(
        AccountId=ACCOUNT, Operation={"S3PutObjectTagging": {"TagSet": []}}, Report={"Enabled": False},
        Manifest={"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                  "Location": {"ObjectArn": "arn:aws:s3:::manifests/proxy.csv", "ETag": etag}},
        Priority=5, RoleArn=ROLE, ConfirmationRequired=False)["JobId"]
    deadline = time.time() + 30
    while s3control.describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]["Status"] != "Complete":
        check(time.time() < deadline, "the proxied job completes")
        time.sleep(0.05)
    listed = s3control.list_jobs(AccountId=ACCOUNT, JobStatuses=["Complete"])["Jobs"]
    check(job_id in [j["JobId"] for j in listed], f"listed: {listed}")
    print("proxy-boto3: ok")


def run_proxy_cli():
    """The aws CLI with the recipe's environment and no --endpoint-url or --region."""
    def aws(*args):
        p = subprocess.run(["aws", "s3control", *args, "--output", "json"], capture_output=True, text=True)
        check(p.returncode == 0, f"aws s3control {args[0]}: {p.stderr}")
        return json.loads(p.stdout) if p.stdout.strip() else {}
    put("data", "cli-proxied", b"x")
    etag = put("manifests", "proxy-cli.csv", b"data,cli-proxied\n")
    manifest = {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": "arn:aws:s3:::manifests/proxy-cli.csv", "ETag": etag}}
    job_id = aws("create-job", "--account-id", ACCOUNT, "--operation", '{"S3DeleteObjectTagging":{}}',
                 "--manifest", json.dumps(manifest), "--report", '{"Enabled":false}', "--priority", "5",
                 "--role-arn", ROLE, "--no-confirmation-required")["JobId"]
    deadline = time.time() + 30
    while aws("describe-job", "--account-id", ACCOUNT, "--job-id", job_id)["Job"]["Status"] != "Complete":
        check(time.time() < deadline, "the proxied job completes")
        time.sleep(0.1)
    jobs = aws("list-jobs", "--account-id", ACCOUNT, "--job-statuses", "Complete")["Jobs"]
    check(job_id in [j["JobId"] for j in jobs], f"list-jobs: {jobs}")
    print("proxy-cli: ok")


{"plus": run_plus, "checksum": run_checksum, "proxy-boto3": run_proxy_boto3, "proxy-cli": run_proxy_cli}[MODE]()
