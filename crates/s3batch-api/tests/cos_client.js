// Drive s3batch's COS dialect with the real Tencent COS Node SDK (cos-nodejs-sdk-v5 3.x). The SDK has no batch
// methods; its generic signed cos.request() is how a Node program calls the COS batch API, so every request below
// is signed by the SDK's own q-sign code (which signs the host with its port and the Content-Type) and every
// error is parsed by the SDK. Run by tests/cos_sdk.rs with the server's address and fixtures in the environment.
// Prints one "PASS <check>" line per check and exits non-zero on the first failure.
'use strict';

const COS = require('cos-nodejs-sdk-v5');
const crypto = require('crypto');

const env = (k) => {
  if (!process.env[k]) throw new Error('missing ' + k);
  return process.env[k];
};
const ENDPOINT = env('COS_ENDPOINT');
const APPID = env('COS_APPID');
const OTHER_APPID = env('COS_OTHER_APPID');
const ROLE = 'qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole';

let checks = 0;
function check(cond, name, detail) {
  if (!cond) {
    console.log('FAIL ' + name + ' ' + (detail === undefined ? '' : JSON.stringify(detail)));
    process.exit(1);
  }
  checks += 1;
  console.log('PASS ' + name);
}

const list = (x) => (x === undefined || x === null ? [] : [].concat(x));

function client(secretId, secretKey, appid) {
  const cos = new COS({ SecretId: secretId, SecretKey: secretKey });
  return (method, path, query, body) => {
    const headers = { 'x-cos-appid': appid };
    const req = { Method: method, Url: ENDPOINT + path, Headers: headers, Query: query || {} };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/xml';
      req.Body = body;
    }
    return cos.request(req);
  };
}

async function expectError(promise, code, status, name) {
  try {
    await promise;
  } catch (e) {
    check(e.code === code && e.statusCode === status, name, { code: e.code, statusCode: e.statusCode, message: e.message });
    return;
  }
  check(false, name, 'the call succeeded');
}

function createBody(token) {
  const etag = env('COS_MANIFEST_ETAG').replace(/"/g, '&quot;');
  return (
    '<CreateJobRequest>' +
    `<ClientRequestToken>${token}</ClientRequestToken>` +
    '<ConfirmationRequired>true</ConfirmationRequired><Description>node job</Description>' +
    `<Manifest><Location><ETag>${etag}</ETag><ObjectArn>${env('COS_MANIFEST_ARN')}</ObjectArn></Location>` +
    '<Spec><Fields><member>Bucket</member><member>Key</member></Fields>' +
    '<Format>COSBatchOperations_CSV_V1</Format></Spec></Manifest>' +
    '<Operation><COSPutObjectTagging><TaggingDirective>Add</TaggingDirective>' +
    '<TagSet><COSTag><Key>node</Key><Value>yes</Value></COSTag></TagSet></COSPutObjectTagging></Operation>' +
    '<Priority>5</Priority>' +
    '<Report><Bucket></Bucket><Enabled>false</Enabled><Format></Format><ReportScope></ReportScope></Report>' +
    `<RoleArn>${ROLE}</RoleArn>` +
    '</CreateJobRequest>'
  );
}

async function main() {
  const call = client(env('COS_SECRET_ID'), env('COS_SECRET_KEY'), APPID);

  const created = await call('POST', '/jobs', {}, createBody(crypto.randomUUID()));
  const id = created.CreateJobResult && created.CreateJobResult.JobId;
  check(id && id.length === 36, 'node create: a JobId', created);

  let job;
  const deadline = Date.now() + 30000;
  for (;;) {
    job = (await call('GET', '/jobs/' + id)).DescribeJobResult.Job;
    if (job.Status === 'Suspended') break;
    if (Date.now() > deadline) check(false, 'node describe: Suspended', job.Status);
    await new Promise((r) => setTimeout(r, 50));
  }
  check(true, 'node describe: Suspended');
  check(job.Manifest.Location.ETag === env('COS_MANIFEST_ETAG'), 'node describe: ETag echoed', job.Manifest.Location);
  check(job.Manifest.Location.ObjectArn === env('COS_MANIFEST_ARN'), 'node describe: qcs ARN echoed');
  const tagging = job.Operation.COSPutObjectTagging;
  check(tagging && tagging.TaggingDirective === 'Add' && list(tagging.TagSet.COSTag)[0].Key === 'node',
    'node describe: COSPutObjectTagging echoed', job.Operation);
  check(job.RoleArn === ROLE && job.ConfirmationRequired === 'true', 'node describe: RoleArn, ConfirmationRequired');

  const listed = (await call('GET', '/jobs', { maxResults: 1 })).ListJobsResult;
  const members = list(listed.Jobs && listed.Jobs.member);
  check(members.length === 1 && members[0].JobId === id && members[0].Operation === 'COSPutObjectTagging',
    'node list: newest job, COS operation name', listed);

  const p = (await call('POST', `/jobs/${id}/priority`, { priority: 77 })).UpdateJobPriorityResult;
  check(p.JobId === id && p.Priority === '77', 'node priority: 77', p);

  const st = (await call('POST', `/jobs/${id}/status`, { requestedJobStatus: 'Cancelled', statusUpdateReason: 'not needed now' }))
    .UpdateJobStatusResult;
  check(['Cancelling', 'Cancelled'].includes(st.Status) && st.StatusUpdateReason === 'not needed now',
    'node status: Cancelled with a reason (spaces as %20)', st);

  await expectError(call('GET', '/jobs/00000000-0000-0000-0000-000000000000'), 'NoSuchJob', 404, 'node error: unknown job');
  await expectError(client(env('COS_SECRET_ID'), 'wrong', APPID)('GET', '/jobs'), 'SignatureDoesNotMatch', 403,
    'node error: bad signature');
  await expectError(client(env('COS_SECRET_ID'), env('COS_SECRET_KEY'), OTHER_APPID)('GET', '/jobs'), 'AccessDenied', 403,
    'node error: another account\'s APPID');
  await expectError(call('POST', '/jobs', {}, '<CreateJobRequest>'), 'MalformedXML', 400, 'node error: bad XML');

  console.log(`cos_client.js: ${checks} checks passed`);
}

main().catch((e) => {
  console.log('FAIL unexpected ' + (e && (e.stack || JSON.stringify(e))));
  process.exit(1);
});
