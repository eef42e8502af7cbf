"""Drive s3batch's COS dialect with the real Tencent COS Python SDK (cos-python-sdk-v5).

The SDK has no batch methods; its public signed-request helper (CosS3Client.send_request with CosS3Auth) is how
a Python program calls the COS batch API, so that is what this script uses: every request below is signed by the
SDK's own q-sign code (which signs the host without its port) and every error is parsed by the SDK's own
CosServiceError. Run by tests/cos_sdk.rs, which starts the server and passes its address and the fixtures in the
environment. Prints one "PASS <check>" line per check and exits non-zero on the first failure.
"""

import os
import sys
import time
import uuid
import xml.etree.ElementTree as ET

from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_auth import CosS3Auth
from qcloud_cos.cos_exception import CosServiceError

ENDPOINT = os.environ["COS_ENDPOINT"]  # http://127.0.0.1:PORT
APPID = os.environ["COS_APPID"]
OTHER_APPID = os.environ["COS_OTHER_APPID"]
SECRET_ID = os.environ["COS_SECRET_ID"]
SECRET_KEY = os.environ["COS_SECRET_KEY"]
OTHER_SECRET_ID = os.environ["COS_OTHER_SECRET_ID"]
OTHER_SECRET_KEY = os.environ["COS_OTHER_SECRET_KEY"]
MANIFEST_ARN = os.environ["COS_MANIFEST_ARN"]
MANIFEST_ETAG = os.environ["COS_MANIFEST_ETAG"]
TARGET = os.environ["COS_TARGET"]
REPORT_BUCKET = os.environ["COS_REPORT_BUCKET"]
ROLE = "qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole"
TIMEOUT = 30

checks = 0


def ok(name):
    global checks
    checks += 1
    print("PASS " + name, flush=True)


def check(cond, name, detail=""):
    if not cond:
        print("FAIL %s %s" % (name, detail), flush=True)
        sys.exit(1)
    ok(name)


class Client:
    """A COS batch client on the SDK's signed-request helper, as the wire reference's recipe does it."""

    def __init__(self, secret_id, secret_key, appid):
        self.conf = CosConfig(Region="ap-chengdu", SecretId=secret_id, SecretKey=secret_key, Scheme="http")
        self.client = CosS3Client(self.conf, retry=0)
        self.appid = appid

    def call(self, method, path, params=None, body=None, headers=None):
        params = dict(params or {})
        hdrs = {} if self.appid is None else {"x-cos-appid": self.appid}
        hdrs.update(headers or {})
        kwargs = dict(auth=CosS3Auth(self.conf, path, params=params), params=params, headers=hdrs)
        if body is not None:
            hdrs["Content-Type"] = "application/xml"
            kwargs["data"] = body
        res = self.client.send_request(method, ENDPOINT + path, **kwargs)
        if not res.text:
            return res, None
        return res, ET.fromstring(res.content)


def expect_error(fn, code, status, name):
    try:
        fn()
    except CosServiceError as e:
        check(
            e.get_error_code() == code and e.get_status_code() == status and e.get_request_id(),
            name,
            "got %s %s %r" % (e.get_status_code(), e.get_error_code(), e.get_error_msg()),
        )
        return e
    check(False, name, "the call succeeded")


def text(el, path):
    found = el.find(path)
    return None if found is None else (found.text or "")


def create_body(token, confirm, description, extra_copy="", priority=10):
    return (
        "<CreateJobRequest>"
        "<ClientRequestToken>%s</ClientRequestToken>"
        "<ConfirmationRequired>%s</ConfirmationRequired>"
        "<Description>%s</Description>"
        "<Manifest><Location><ETag>%s</ETag><ObjectArn>%s</ObjectArn></Location>"
        "<Spec><Fields><member>Bucket</member><member>Key</member></Fields>"
        "<Format>COSBatchOperations_CSV_V1</Format></Spec></Manifest>"
        "<Operation><COSPutObjectCopy>%s<TargetResource>%s</TargetResource></COSPutObjectCopy></Operation>"
        "<Priority>%d</Priority>"
        "<Report><Bucket>%s</Bucket><Enabled>true</Enabled><Format>Report_CSV_V1</Format>"
        "<Prefix>job-result</Prefix><ReportScope>AllTasks</ReportScope></Report>"
        "<RoleArn>%s</RoleArn>"
        "</CreateJobRequest>"
    ) % (
        token,
        "true" if confirm else "false",
        description,
        MANIFEST_ETAG.replace('"', "&quot;"),
        MANIFEST_ARN,
        extra_copy,
        TARGET,
        priority,
        REPORT_BUCKET,
        ROLE,
    )


def describe(c, job_id):
    _, doc = c.call("GET", "/jobs/" + job_id)
    return doc.find("Job")


def wait_status(c, job_id, wanted):
    deadline = time.time() + TIMEOUT
    while True:
        job = describe(c, job_id)
        status = text(job, "Status")
        if status in wanted:
            return job
        if time.time() > deadline:
            check(False, "wait for %s" % "/".join(wanted), "job %s is %s" % (job_id, status))
        time.sleep(0.05)


def main():
    c = Client(SECRET_ID, SECRET_KEY, APPID)
    other = Client(OTHER_SECRET_ID, OTHER_SECRET_KEY, OTHER_APPID)

    # CreateJob: a copy into the target bucket under copies/, waiting for confirmation.
    copy_opts = (
        "<PrefixReplace>true</PrefixReplace><TargetKeyPrefix>copies/</TargetKeyPrefix>"
        "<MetadataDirective>Copy</MetadataDirective><TaggingDirective>Replaced</TaggingDirective>"
        "<NewObjectTagging><COSTag><Key>stage</Key><Value>copied</Value></COSTag></NewObjectTagging>"
        "<StorageClass>STANDARD</StorageClass>"
    )
    token = str(uuid.uuid4())
    body = create_body(token, True, "sdk copy job", copy_opts)
    res, doc = c.call("POST", "/jobs", body=body)
    check(res.status_code == 200 and doc.tag == "CreateJobResult", "create: 200 <CreateJobResult>")
    job_id = text(doc, "JobId")
    check(job_id and len(job_id) == 36, "create: a JobId", job_id)
    check(res.headers.get("x-cos-request-id"), "create: x-cos-request-id")

    # DescribeJob: Suspended, and the request echoed in COS names and spelling.
    job = wait_status(c, job_id, ["Suspended"])
    ok("describe: confirmation required parks the job in Suspended")
    check(text(job, "JobId") == job_id, "describe: JobId")
    check(text(job, "ConfirmationRequired") == "true", "describe: ConfirmationRequired")
    check(text(job, "Description") == "sdk copy job", "describe: Description")
    check(text(job, "Priority") == "10", "describe: Priority")
    check(text(job, "RoleArn") == ROLE, "describe: RoleArn as given")
    check(text(job, "Manifest/Location/ObjectArn") == MANIFEST_ARN, "describe: manifest qcs ARN as given")
    check(text(job, "Manifest/Location/ETag") == MANIFEST_ETAG, "describe: ETag with its quotes")
    check(
        [m.text for m in job.findall("Manifest/Spec/Fields/member")] == ["Bucket", "Key"]
        and text(job, "Manifest/Spec/Format") == "COSBatchOperations_CSV_V1",
        "describe: manifest spec",
    )
    copy = job.find("Operation/COSPutObjectCopy")
    check(copy is not None and text(copy, "TargetResource") == TARGET, "describe: COSPutObjectCopy and target")
    check(
        text(copy, "PrefixReplace") == "true"
        and text(copy, "TargetKeyPrefix") == "copies/"
        and text(copy, "NewObjectTagging/COSTag/Key") == "stage",
        "describe: copy options echoed",
    )
    check(
        text(job, "Report/Bucket") == REPORT_BUCKET
        and text(job, "Report/Format") == "Report_CSV_V1"
        and text(job, "Report/ReportScope") == "AllTasks"
        and text(job, "Report/Enabled") == "true",
        "describe: report",
    )
    check(text(job, "ProgressSummary/TotalNumberOfTasks") == "3", "describe: 3 tasks after preparing")
    check(text(job, "CreationTime").endswith("Z") and "." not in text(job, "CreationTime"), "describe: CreationTime")
    check(text(job, "SuspendedDate"), "describe: SuspendedDate")

    # A second job, to list and cancel.
    job2 = text(c.call("POST", "/jobs", body=create_body(str(uuid.uuid4()), True, "second", copy_opts, 3))[1], "JobId")
    wait_status(c, job2, ["Suspended"])

    # ListJobs: both, newest first; filters; paging by the last JobId.
    _, doc = c.call("GET", "/jobs")
    ids = [text(m, "JobId") for m in doc.findall("Jobs/member")]
    check(ids[:2] == [job2, job_id], "list: both jobs, newest first", repr(ids))
    member = doc.find("Jobs/member")
    check(text(member, "Operation") == "COSPutObjectCopy", "list: the COS operation name")
    check(text(member, "Status") == "Suspended" and member.find("ProgressSummary") is not None, "list: status, progress")
    check(doc.find("NextToken") is None, "list: no NextToken on the last page")
    _, doc = c.call("GET", "/jobs", params={"maxResults": "1"})
    page1 = [text(m, "JobId") for m in doc.findall("Jobs/member")]
    token1 = text(doc, "NextToken")
    check(page1 == [job2] and token1 == job2, "list: page 1 of 1 job, NextToken = its JobId", repr((page1, token1)))
    _, doc = c.call("GET", "/jobs", params={"maxResults": "1", "nextToken": token1})
    check([text(m, "JobId") for m in doc.findall("Jobs/member")] == [job_id], "list: page 2 after the token")
    _, doc = c.call("GET", "/jobs", params={"jobStatuses": "Complete"})
    check(doc.findall("Jobs/member") == [], "list: a status filter")
    _, doc = c.call("GET", "/jobs", params={"jobStatuses": "Complete,Suspended"})
    check(len(doc.findall("Jobs/member")) == 2, "list: comma-separated statuses")

    # UpdateJobPriority.
    res, doc = c.call("POST", "/jobs/%s/priority" % job_id, params={"priority": "42"})
    check(doc.tag == "UpdateJobPriorityResult" and text(doc, "Priority") == "42", "priority: 42")
    check(text(doc, "JobId") == job_id, "priority: JobId")
    check(text(describe(c, job_id), "Priority") == "42", "priority: describe shows 42")

    # UpdateJobStatus Ready (the reason has a space: the SDK sends '+', signs '%20') and the job runs to the end.
    res, doc = c.call(
        "POST", "/jobs/%s/status" % job_id, params={"requestedJobStatus": "Ready", "statusUpdateReason": "to test"}
    )
    # The status after the change: the engine may already have started the job.
    check(
        doc.tag == "UpdateJobStatusResult" and text(doc, "Status") in ("Ready", "Active", "Completing", "Complete"),
        "status: Ready",
        ET.tostring(doc).decode(),
    )
    check(text(doc, "StatusUpdateReason") == "to test", "status: the reason, decoded")
    job = wait_status(c, job_id, ["Complete", "Failed"])
    check(text(job, "Status") == "Complete", "run: Complete", ET.tostring(job).decode())
    check(
        text(job, "ProgressSummary/NumberOfTasksSucceeded") == "3"
        and text(job, "ProgressSummary/NumberOfTasksFailed") == "0",
        "run: 3 tasks succeeded",
    )
    check(text(job, "TerminationDate"), "run: TerminationDate")
    print("COMPLETED_JOB " + job_id, flush=True)

    # UpdateJobStatus Cancelled on the second job.
    res, doc = c.call("POST", "/jobs/%s/status" % job2, params={"requestedJobStatus": "Cancelled"})
    check(text(doc, "Status") in ("Cancelling", "Cancelled"), "status: Cancelled accepted from Suspended")
    wait_status(c, job2, ["Cancelled"])
    ok("status: the job ends Cancelled")

    # Rules on finished jobs.
    expect_error(
        lambda: c.call("POST", "/jobs/%s/status" % job2, params={"requestedJobStatus": "Ready"}),
        "InvalidRequest", 400, "status: a finished job cannot change (400 InvalidRequest)",
    )
    expect_error(
        lambda: c.call("POST", "/jobs/%s/priority" % job_id, params={"priority": "1"}),
        "NoSuchJob", 404, "priority: a finished job is 404 NoSuchJob",
    )

    # DeleteJob: not while it runs; a finished job goes away.
    job3 = text(c.call("POST", "/jobs", body=create_body(str(uuid.uuid4()), True, "third", copy_opts))[1], "JobId")
    expect_error(lambda: c.call("DELETE", "/jobs/" + job3), "InvalidRequest", 400, "delete: refused while unfinished")
    res, _ = c.call("DELETE", "/jobs/" + job2)
    check(res.status_code == 204, "delete: 204 for a finished job")
    expect_error(lambda: describe(c, job2), "NoSuchJob", 404, "delete: the job is gone")
    c.call("POST", "/jobs/%s/status" % job3, params={"requestedJobStatus": "Cancelled"})

    # Errors, each in the COS <Error> body as the SDK parses it.
    e = expect_error(lambda: describe(c, "00000000-0000-0000-0000-000000000000"), "NoSuchJob", 404, "error: unknown job")
    check(e.get_trace_id(), "error: TraceId")
    bad_sig = Client(SECRET_ID, "not-the-secret", APPID)
    expect_error(lambda: bad_sig.call("GET", "/jobs"), "SignatureDoesNotMatch", 403, "error: bad signature")
    unknown = Client("AKIDUNKNOWN", "x", APPID)
    expect_error(lambda: unknown.call("GET", "/jobs"), "InvalidAccessKeyId", 403, "error: unknown SecretId")
    wrong_appid = Client(SECRET_ID, SECRET_KEY, OTHER_APPID)
    expect_error(lambda: wrong_appid.call("GET", "/jobs"), "AccessDenied", 403, "error: another account's APPID")
    no_appid = Client(SECRET_ID, SECRET_KEY, None)
    expect_error(lambda: no_appid.call("GET", "/jobs"), "InvalidArgument", 400, "error: no x-cos-appid")
    expect_error(
        lambda: c.call("POST", "/jobs", body="<CreateJobRequest><Priority>1</Prio"),
        "MalformedXML", 400, "error: bad XML",
    )
    expect_error(
        lambda: c.call("POST", "/jobs", body=body), "InvalidRequest", 400, "error: a reused ClientRequestToken"
    )
    expect_error(
        lambda: c.call("POST", "/jobs", body=create_body(str(uuid.uuid4()), False, "x", "", 2147483648)),
        "InvalidRequest", 400, "error: priority out of range",
    )
    expect_error(
        lambda: c.call("GET", "/jobs", params={"maxResults": "0"}), "InvalidArgument", 400, "error: maxResults 0"
    )
    expect_error(
        lambda: c.call("GET", "/jobs", params={"jobStatuses": "Running"}), "InvalidArgument", 400,
        "error: an unknown status",
    )
    expect_error(
        lambda: c.call("GET", "/jobs", params={"nextToken": "no-such-job-id"}), "InvalidArgument", 400,
        "error: a nextToken that is no job",
    )
    expect_error(
        lambda: c.call("POST", "/jobs/%s/status" % job_id, params={"requestedJobStatus": "Active"}),
        "InvalidArgument", 400, "error: requestedJobStatus other than Ready/Cancelled",
    )
    expect_error(
        lambda: c.call("POST", "/jobs/%s/priority" % job_id), "InvalidRequest", 400, "error: no priority"
    )

    # Accounts: another account's key (with its own APPID) sees none of these jobs.
    expect_error(lambda: describe(other, job_id), "NoSuchJob", 404, "accounts: another account cannot see the job")
    _, doc = other.call("GET", "/jobs")
    check(doc.findall("Jobs/member") == [], "accounts: another account lists nothing")
    # Roles: the CAM role is account A's; another account naming it is refused, and creates nothing.
    expect_error(
        lambda: other.call("POST", "/jobs", body=create_body(str(uuid.uuid4()), True, "theirs")),
        "AccessDenied", 403, "roles: another account cannot use the role",
    )
    _, doc = other.call("GET", "/jobs")
    check(doc.findall("Jobs/member") == [], "roles: nothing was created for the other account")

    print("cos_client: %d checks passed" % checks, flush=True)


if __name__ == "__main__":
    main()
