// End-to-end test of the web console in a real headless Chromium (Debian's), driven by playwright-core.
// Run by tests/console.rs: node console.mjs MODE ENDPOINT CHROMIUM SHOTS DATA_JSON
//   MODE "accounts": the whole user journey on a server with two accounts;
//   MODE "open": a cross-site page cannot create a job on an open (no accounts) server.
// Prints "console MODE: ok" at the end; any failed check throws (non-zero exit).
import { chromium } from "playwright-core";
import http from "node:http";
import fs from "node:fs";

const [mode, endpoint, chromiumPath, shots, dataJson] = process.argv.slice(2);
const data = JSON.parse(dataJson);
fs.mkdirSync(shots, { recursive: true });

function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
  console.log("PASS " + msg);
}

// A page on another origin that submits forms to s3batch, as a malicious site would.
async function attackerSite(html) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html[req.url] || "not here");
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, origin: "http://127.0.0.1:" + server.address().port };
}

function autoPost(action, fields, enctype) {
  const inputs = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name='${k}' value='${v}'>`)
    .join("");
  return `<!doctype html><body><form id="f" method="post" action="${action}" enctype="${enctype}">${inputs}</form>
    <script>document.getElementById("f").submit()</script></body>`;
}

const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.on("dialog", (d) => d.accept());
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const badge = (status) => page.locator(".titlebar .badge", { hasText: status });

  if (mode === "open") {
    // An open server: the console opens without sign-in...
    await page.goto(endpoint + "/console");
    check(page.url().endsWith("/console"), "an open server's console opens without sign-in");
    await page.getByRole("link", { name: "Create job" }).waitFor();
    // ...and a page of another site cannot create a job through it (a text/plain form POST needs no preflight).
    const body = JSON.stringify({ x: 1 });
    const evil = await attackerSite({
      "/api": autoPost(endpoint + "/v20180820/jobs", { "<CreateJobRequest>": "</CreateJobRequest>" }, "text/plain"),
      "/json": autoPost(endpoint + "/api/v1/jobs", { [body]: "" }, "text/plain"),
    });
    for (const path of ["/api", "/json"]) {
      const [resp] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(endpoint)),
        page.goto(evil.origin + path),
      ]);
      check(resp.status() === 403, `a cross-site POST from ${path} is refused with 403 (got ${resp.status()})`);
      const text = await resp.text();
      check(text.includes("AccessDenied"), `the refusal says AccessDenied: ${text}`);
    }
    evil.server.close();
    console.log("console open: ok");
  } else {
    // ---- Sign in (with the keyboard) ----
    await page.goto(endpoint + "/console");
    check(page.url().endsWith("/console/sign-in"), "the console asks to sign in");
    await shot("sign-in");
    await page.getByLabel("Access key ID", { exact: true }).fill(data.key);
    await page.getByLabel("Secret access key", { exact: true }).fill("wrong-secret");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("is not right").waitFor();
    check(true, "a wrong secret is refused");
    await page.getByLabel("Access key ID", { exact: true }).focus();
    await page.keyboard.press("Control+A");
    await page.keyboard.type(data.key);
    await page.keyboard.press("Tab");
    await page.keyboard.type(data.secret);
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/console$/);
    check((await page.locator("header .who").innerText()).includes(data.account), "signed in as the account");

    // ---- Create a job through the form ----
    await page.getByRole("link", { name: "Create job" }).click();
    await page.getByLabel("CSV manifest", { exact: true }).check();
    await page.getByLabel("Manifest bucket", { exact: true }).fill(data.manifestBucket);
    await page.getByLabel("Manifest key", { exact: true }).fill(data.manifestKey);
    await page.getByRole("button", { name: "Look up ETag" }).first().click();
    await page.waitForFunction(() => document.getElementById("manifest-etag").value.length > 0);
    check(true, "the manifest's ETag is looked up");
    await page.getByLabel("Operation", { exact: true }).selectOption("S3PutObjectTagging");
    await page.getByLabel("Tag set", { exact: true }).fill("stage=reviewed\nteam=photos");
    await page.getByLabel("Report bucket", { exact: true }).fill(data.reportBucket);
    await page.getByLabel("Report prefix", { exact: true }).fill("console");
    await page.getByLabel("Description", { exact: true }).fill("Tag the photos from the console");
    await page.getByLabel("Priority", { exact: true }).fill("-5");
    await shot("create-job");
    await page.getByRole("button", { name: "Create job" }).click();
    await page.locator("#priority-error").waitFor();
    check(true, "a bad priority is shown beside its field, and nothing is lost");
    check((await page.getByLabel("Tag set", { exact: true }).inputValue()).includes("team=photos"), "the form keeps what was typed");
    await page.getByLabel("Priority", { exact: true }).fill("20");
    await page.getByRole("button", { name: "Create job" }).click();
    await page.waitForURL(/\/console\/jobs\/[0-9a-f-]{36}\?notice=/);
    const jobId = page.url().match(/jobs\/([0-9a-f-]{36})/)[1];
    check(true, "job created: " + jobId);

    // ---- Suspended, then confirmed after the preview ----
    await badge("Suspended").waitFor({ timeout: 60000 });
    check(true, "the job waits in Suspended");
    await shot("job-suspended");
    await page.getByRole("link", { name: "Confirm and run" }).click();
    await page.getByText("What this job will do").waitFor();
    const impact = await page.locator("section[aria-label=Impact]").innerText();
    check(impact.includes(String(data.manifestLines)), `the preview counts ${data.manifestLines} tasks: ${impact}`);
    await shot("confirm");
    await page.getByRole("button", { name: "Confirm and run" }).click();
    await page.getByText("Confirmed").waitFor();
    await badge("Complete").waitFor({ timeout: 120000 });
    check(true, "the job reaches Complete (the page refreshes itself)");
    const progress = await page.locator("#live-detail").innerText();
    check(progress.includes(`${data.missing} failed`), `progress shows ${data.missing} failed: ${progress}`);
    await page.getByRole("heading", { name: "Status history" }).scrollIntoViewIfNeeded();
    const history = await page.locator("section[aria-label='Status history']").innerText();
    for (const s of ["New", "Preparing", "Suspended", "Ready", "Active", "Complete"]) {
      check(history.includes(s), `the status history has ${s}`);
    }
    const config = await page.locator("section[aria-label=Configuration]").innerText();
    check(config.includes("Tag set") && config.includes("team=photos") && !config.includes('"TagSet"'),
      "the operation's parameters show under the form's labels");
    await shot("job-detail");

    // ---- Clone job: the create form, filled in ----
    await page.getByRole("link", { name: "Clone job" }).click();
    check((await page.getByLabel("Tag set", { exact: true }).inputValue()) === "stage=reviewed\nteam=photos",
      "Clone job fills in the operation's parameters");
    check((await page.getByLabel("Manifest key", { exact: true }).inputValue()) === data.manifestKey,
      "Clone job fills in the manifest");
    check((await page.getByLabel("Description", { exact: true }).inputValue()) === "Tag the photos from the console",
      "Clone job fills in the description");
    await page.goBack();

    // ---- The report ----
    await page.getByRole("link", { name: "View completion report" }).click();
    const failures = await page.locator("section[aria-label='Failures by error']").innerText();
    check(failures.includes("NoSuchKey") && failures.includes("404"), `failures by code: ${failures}`);
    check(
      (await page.locator("table.report tbody tr").count()) === data.manifestLines,
      "all rows are in the report table",
    );
    const filesRes = await page.request.get(
      await page.getByRole("link", { name: "failed results" }).getAttribute("href", { timeout: 5000 }).then((h) => endpoint + h));
    check(filesRes.status() === 200 && (await filesRes.text()).trim().split("\n").length === data.missing,
      "the report's failed results file opens from its link");
    const manifestRes = await page.request.get(endpoint + new URL(page.url()).pathname + "/file?n=manifest");
    check((await manifestRes.json()).Results.length === 2, "the report's manifest.json opens from its link");
    await page.getByRole("link", { name: "Failed only" }).click();
    const failedRows = page.locator("table.report tbody tr");
    check((await failedRows.count()) === data.missing, `failed only shows the ${data.missing} failed rows`);
    for (const row of await failedRows.all()) {
      check((await row.innerText()).includes("failed"), "a failed-only row is failed");
    }
    await shot("report");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download CSV" }).click(),
    ]);
    const csv = fs.readFileSync(await download.path(), "utf8").trim().split("\n");
    check(csv.length === data.missing, `the failed rows download as CSV (${csv.length} lines)`);

    // ---- Re-run failed tasks: a new job of the failed tasks, waiting for confirmation ----
    await page.goto(endpoint + "/console/jobs/" + jobId);
    await page.getByRole("button", { name: "Re-run failed tasks" }).click();
    await page.getByText("re-runs the failed tasks of " + jobId).waitFor();
    const rerunId = page.url().match(/jobs\/([0-9a-f-]{36})/)[1];
    check(rerunId !== jobId, "Re-run failed tasks creates a new job");
    await badge("Suspended").waitFor({ timeout: 60000 });
    const rerunTotal = await page.locator("#live-detail").innerText();
    check(rerunTotal.includes(`${data.missing} total`), `the re-run has the ${data.missing} failed tasks`);

    // ---- Search and filter ----
    await page.goto(endpoint + "/console");
    await page.getByLabel("Search jobs", { exact: true }).fill("photos from the console");
    await page.getByRole("button", { name: "Apply" }).click();
    let rows = page.locator("table.jobs tbody tr");
    check((await rows.count()) === 1 && (await rows.first().innerText()).includes(jobId), "search by description");
    await page.getByLabel("Search jobs", { exact: true }).fill(jobId.slice(9, 18));
    await page.getByRole("button", { name: "Apply" }).click();
    const found = await page.locator("table.jobs tbody tr").evaluateAll((trs) => trs.map((t) => t.dataset.job));
    check(found.includes(jobId) && found.length <= 2, `search by part of an ID (the job, and its re-run naming it): ${found}`);
    await page.getByLabel("Search jobs", { exact: true }).fill(data.otherAccountJob);
    await page.getByRole("button", { name: "Apply" }).click();
    await page.getByText("No jobs match").waitFor();
    check(true, "another account's job is not listed");
    await page.getByLabel("Search jobs", { exact: true }).fill("");
    await page.getByLabel("Status", { exact: true }).selectOption(["Complete"]);
    await page.getByRole("button", { name: "Apply" }).click();
    const statuses = await page.locator("table.jobs tbody tr .badge").allInnerTexts();
    check(statuses.length >= 1 && statuses.every((s) => s === "Complete"), `filter by status: ${statuses}`);
    const other = await page.goto(endpoint + "/console/jobs/" + data.otherAccountJob);
    check(other.status() === 404, "another account's job cannot be opened");

    // ---- A running job: priority, then cancel ----
    await page.goto(endpoint + "/console/jobs/" + data.activeJob);
    await badge("Active").waitFor({ timeout: 60000 });
    await page.getByRole("button", { name: "Pause" }).click();
    await page.getByText("Pause requested").waitFor();
    // Pausing lets the tasks in flight finish, then Paused.
    await page.locator(".titlebar .badge", { hasText: /^Paus(ing|ed)$/ }).waitFor({ timeout: 60000 });
    check(true, "a running job is paused");
    await page.getByRole("button", { name: "Resume" }).click();
    await page.getByText("Resumed").waitFor();
    check((await page.getByRole("button", { name: "Resume" }).count()) === 0, "a paused job resumes");
    await page.getByLabel("Rate limit (tasks/s, empty for none)", { exact: true }).fill("2");
    await page.getByRole("button", { name: "Update rate limit" }).click();
    await page.getByText("Rate limit set to 2 tasks/s").waitFor();
    check(true, "the rate limit of a running job is changed");
    await page.getByLabel("Priority", { exact: true }).fill("77");
    await page.getByRole("button", { name: "Update priority" }).click();
    await page.getByText("Priority set to 77").waitFor();
    check(true, "the priority of a running job is updated");
    await shot("job-active");
    await page.getByLabel("Reason for cancelling", { exact: true }).fill("enough for today");
    await page.getByRole("button", { name: "Cancel job" }).click();
    await page.getByText("Cancel requested").waitFor();
    await badge("Cancelled").waitFor({ timeout: 60000 });
    check(true, "a running job is cancelled");

    // ---- The list, for the README ----
    await page.goto(endpoint + "/console");
    await shot("jobs-list");

    // ---- Cross-site forms are refused ----
    const csrfLess = await attackerSite({
      "/console": autoPost(endpoint + `/console/jobs/${jobId}/tags`, { csrf: "guess", tags: "owned=yes" },
        "application/x-www-form-urlencoded"),
      "/api": autoPost(endpoint + "/v20180820/jobs", { "<CreateJobRequest>": "</CreateJobRequest>" }, "text/plain"),
    });
    for (const path of ["/console", "/api"]) {
      const [resp] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(endpoint) && r.request().method() === "POST"),
        page.goto(csrfLess.origin + path),
      ]);
      check(resp.status() === 403, `a cross-site form POST to ${path} is refused (got ${resp.status()})`);
    }
    csrfLess.server.close();
    await page.goto(endpoint + "/console/jobs/" + jobId);
    check(!(await page.locator("section[aria-label=Configuration]").innerText()).includes("owned=yes"),
      "the cross-site form changed nothing");

    // ---- Sign out ----
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/sign-in$/);
    await page.goto(endpoint + "/console");
    check(page.url().endsWith("/console/sign-in"), "after signing out the console asks to sign in again");
    console.log("console accounts: ok");
  }
} finally {
  await browser.close();
}
