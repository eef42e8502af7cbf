"""Drive a running s3batch server with the real AWS clients: boto3 and the `aws` CLI.

Usage: aws_clients.py boto3|cli ENDPOINT ACCOUNT KEY SECRET MANIFEST_ETAG

Exits 0 when every check passed; prints what failed otherwise. Objects `data/a,b,c`, the manifest
`manifests/m.csv` and the bucket `reports` exist on the server's storage.
"""
import json
import os
import subprocess
import sys
import time

import boto3
import botocore
from botocore.config import Config

MODE, ENDPOINT, ACCOUNT, KEY, SECRET, ETAG = sys.argv[1:7]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/batch"
OPERATION = {"S3PutObjectTagging": {"TagSet": [{"Key": "by", "Value": MODE}]}}
MANIFEST = {
    "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
    "Location": {"ObjectArn": "arn:aws:s3:::manifests/m.csv", "ETag": ETAG},
}
REPORT = {"Bucket": "arn:aws:s3:::reports", "Format": "Report_CSV_20180820", "Enabled": True,
          "Prefix": "r", "ReportScope": "AllTasks"}


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def client(region="snow", secret=SECRET, **config):
    return boto3.client("s3control", region_name=region, endpoint_url=ENDPOINT, aws_access_key_id=KEY,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}, **config))


def wait(describe, job_id, want):
    deadline = time.time() + 30
    while True:
        status = describe(job_id)["Status"]
        if status == want:
            return
        check(time.time() < deadline, f"job {job_id} is {status}, waiting for {want}")
        time.sleep(0.05)


def run_boto3():
    c = client()
    describe = lambda j: c.describe_job(AccountId=ACCOUNT, JobId=j)["Job"]
    job_id = c.create_job(AccountId=ACCOUNT, Operation=OPERATION, Manifest=MANIFEST, Report=REPORT, Priority=10,
                          RoleArn=ROLE, Description="boto3", Tags=[{"Key": "team", "Value": "data"}])["JobId"]
    wait(describe, job_id, "Suspended")
    job = describe(job_id)
    check(job["ConfirmationRequired"] is True, "absent ConfirmationRequired means required")
    check(job["Operation"] == OPERATION, f"operation echoed: {job['Operation']}")
    check(job["Manifest"]["Location"]["ObjectArn"] == MANIFEST["Location"]["ObjectArn"], "manifest echoed")
    check(job["Report"] == REPORT, f"report echoed: {job['Report']}")
    check("SuspendedDate" in job and "SuspendedCause" in job, "suspended date and cause")
    check(job["ProgressSummary"]["TotalNumberOfTasks"] == 3, "three tasks")
    check(c.get_job_tagging(AccountId=ACCOUNT, JobId=job_id)["Tags"] == [{"Key": "team", "Value": "data"}], "tags")
    c.put_job_tagging(AccountId=ACCOUNT, JobId=job_id, Tags=[])
    check(c.get_job_tagging(AccountId=ACCOUNT, JobId=job_id)["Tags"] == [], "an empty Tags list, not a missing key")
    out = c.update_job_priority(AccountId=ACCOUNT, JobId=job_id, Priority=42)
    check(out["Priority"] == 42 and out["JobId"] == job_id, "priority answer")
    out = c.update_job_status(AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Ready")
    check(out["Status"] in ("Ready", "Active", "Complete"), f"status after Ready: {out['Status']}")
    wait(describe, job_id, "Complete")
    job = describe(job_id)
    check(job["ProgressSummary"]["NumberOfTasksSucceeded"] == 3, "three succeeded")
    check("TerminationDate" in job, "termination date")
    listed = c.list_jobs(AccountId=ACCOUNT, JobStatuses=["Complete"])
    check([j["JobId"] for j in listed["Jobs"]] == [job_id], "listed by status")
    check(listed["Jobs"][0]["Operation"] == "S3PutObjectTagging", "ListJobs shows the OperationName")
    check(c.list_jobs(AccountId=ACCOUNT, JobStatuses=["Active"])["Jobs"] == [], "an empty Jobs list")
    check("RequestId" in listed["ResponseMetadata"] and listed["ResponseMetadata"]["RequestId"], "x-amz-request-id")

    try:
        c.describe_job(AccountId=ACCOUNT, JobId="00000000-0000-0000-0000-000000000000")
        check(False, "describe of an unknown job")
    except c.exceptions.NotFoundException:
        pass
    try:
        c.update_job_status(AccountId=ACCOUNT, JobId=job_id, RequestedJobStatus="Ready")
        check(False, "Ready on a finished job")
    except c.exceptions.JobStatusException:
        pass
    try:
        c.update_job_priority(AccountId=ACCOUNT, JobId=job_id, Priority=2147483648)
        check(False, "priority out of range")
    except c.exceptions.BadRequestException:
        pass
    try:
        c.list_jobs(AccountId=ACCOUNT, NextToken="forged")
        check(False, "a forged token")
    except c.exceptions.InvalidNextTokenException:
        pass
    try:
        client(secret="wrong").list_jobs(AccountId=ACCOUNT)
        check(False, "a wrong secret")
    except botocore.exceptions.ClientError as e:
        check(e.response["Error"]["Code"] == "SignatureDoesNotMatch", f"wrong secret: {e.response['Error']}")
        check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, "403 for a bad signature")

    # A real region and s3batch as an HTTP proxy: the SDK sends an absolute-form target to
    # <account>.127.0.0.1:<port>, signed for us-east-1.
    proxied = client(region="us-east-1", proxies={"http": ENDPOINT})
    check(proxied.describe_job(AccountId=ACCOUNT, JobId=job_id)["Job"]["JobId"] == job_id, "absolute-form targets")
    print("boto3: ok")


def aws(*args, ok=True):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1")
    cmd = ["aws", "s3control", *args, "--region", "snow", "--endpoint-url", ENDPOINT, "--output", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if ok:
        check(p.returncode == 0, f"{' '.join(args[:1])} failed: {p.stderr}")
        return json.loads(p.stdout) if p.stdout.strip() else {}
    check(p.returncode != 0, f"{' '.join(args[:1])} should have failed")
    return p.stderr


def run_cli():
    describe = lambda j: aws("describe-job", "--account-id", ACCOUNT, "--job-id", j)["Job"]
    create = lambda *extra: aws("create-job", "--account-id", ACCOUNT, "--operation", json.dumps(OPERATION),
                                "--manifest", json.dumps(MANIFEST), "--report", json.dumps(REPORT),
                                "--priority", "10", "--role-arn", ROLE, *extra)["JobId"]
    job_id = create("--description", "cli")
    wait(describe, job_id, "Suspended")
    # The commands of the S3 user guide.
    out = aws("update-job-status", "--account-id", ACCOUNT, "--job-id", job_id, "--requested-job-status", "Ready")
    check(out["JobId"] == job_id, "update-job-status answer")
    wait(describe, job_id, "Complete")

    other = create("--confirmation-required")
    wait(describe, other, "Suspended")
    out = aws("update-job-status", "--account-id", ACCOUNT, "--job-id", other, "--status-update-reason",
              "No longer needed", "--requested-job-status", "Cancelled")
    check(out["Status"] in ("Cancelled", "Cancelling"), f"cancel answer: {out}")
    check(out["StatusUpdateReason"] == "No longer needed", "the reason is echoed")
    wait(describe, other, "Cancelled")
    check(describe(other)["StatusUpdateReason"] == "No longer needed", "the reason is kept")

    third = create("--no-confirmation-required")
    wait(describe, third, "Complete")

    jobs = aws("list-jobs", "--account-id", ACCOUNT, "--job-statuses", "Complete", "Cancelled")["Jobs"]
    check(sorted(j["JobId"] for j in jobs) == sorted([job_id, other, third]), "list-jobs by status")
    page = aws("list-jobs", "--account-id", ACCOUNT, "--max-results", "2")
    check(len(page["Jobs"]) == 2 and "NextToken" in page, "first page")
    rest = aws("list-jobs", "--account-id", ACCOUNT, "--max-results", "2", "--next-token", page["NextToken"])
    check(len(rest["Jobs"]) == 1 and "NextToken" not in rest, "last page has no NextToken")

    aws("put-job-tagging", "--account-id", ACCOUNT, "--job-id", job_id, "--tags", "Key=k,Value=v")
    check(aws("get-job-tagging", "--account-id", ACCOUNT, "--job-id", job_id)["Tags"] == [{"Key": "k", "Value": "v"}],
          "get-job-tagging")
    aws("delete-job-tagging", "--account-id", ACCOUNT, "--job-id", job_id)
    check(aws("get-job-tagging", "--account-id", ACCOUNT, "--job-id", job_id)["Tags"] == [], "tags deleted")
    out = aws("update-job-priority", "--account-id", ACCOUNT, "--job-id", other, "--priority", "3", ok=False)
    check("BadRequestException" in out, f"a finished job's priority: {out}")
    err = aws("describe-job", "--account-id", ACCOUNT, "--job-id", "00000000-0000-0000-0000-000000000000", ok=False)
    check("NotFoundException" in err, f"unknown job: {err}")
    err = aws("update-job-status", "--account-id", ACCOUNT, "--job-id", job_id, "--requested-job-status", "Ready",
              ok=False)
    check("JobStatusException" in err, f"Ready on a finished job: {err}")
    print("cli: ok")


{"boto3": run_boto3, "cli": run_cli}[MODE]()
