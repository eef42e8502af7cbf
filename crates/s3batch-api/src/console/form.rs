//! The create-job form: its fields (one table per operation, so every operation has a form), and the two
//! conversions between the form's values and a [`JobSpec`] in the JSON API's shape. The spec is built as JSON and
//! read by the same serde code as every API, so the console accepts exactly what the APIs accept.

use std::collections::BTreeMap;

use s3batch_core::JobSpec;
use s3batch_core::spec::{CANNED_ACLS, CHECKSUM_ALGORITHMS, OBJECT_LOCK_MODES, STORAGE_CLASSES};
use serde_json::{Map, Value, json};

/// The form's values, by field name (a field may repeat: multi-selects).
#[derive(Debug, Clone, Default)]
pub struct Values(BTreeMap<String, Vec<String>>);

impl Values {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Values {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            m.entry(k).or_default().push(v);
        }
        Values(m)
    }

    /// The first value of a field, trimmed ("" when absent).
    pub fn get(&self, k: &str) -> &str {
        self.0.get(k).and_then(|v| v.first()).map_or("", |s| s.trim())
    }

    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0.get(k).map(|v| v.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
    }

    pub fn set(&mut self, k: impl Into<String>, v: impl Into<String>) {
        self.0.insert(k.into(), vec![v.into()]);
    }

    pub fn set_all(&mut self, k: impl Into<String>, v: Vec<String>) {
        self.0.insert(k.into(), v);
    }

    pub fn checked(&self, k: &str) -> bool {
        matches!(self.get(k), "on" | "true" | "1")
    }
}

/// How a field's text becomes JSON.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Text,
    Int,
    Bool,
    /// One of the choices.
    Select(&'static [&'static str]),
    /// One of the choices, or none: the member is left out and the service's default applies.
    Optional(&'static [&'static str]),
    /// `key=value` lines → `[{"Key": …, "Value": …}]`.
    Tags,
    /// Comma- or line-separated → `["…"]`.
    List,
    /// `key=value` lines → `{"key": "value"}`.
    Map,
}

/// One parameter of an operation: its form name, label, where it goes in the operation's JSON, how it converts.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub path: &'static str,
    pub kind: Kind,
    pub hint: &'static str,
}

/// An operation's form.
#[derive(Debug, Clone, Copy)]
pub struct OpForm {
    pub op: &'static str,
    pub title: &'static str,
    pub fields: &'static [Field],
}

const fn f(name: &'static str, label: &'static str, path: &'static str, kind: Kind, hint: &'static str) -> Field {
    Field { name, label, path, kind, hint }
}

/// Every operation s3batch runs, in the order the form lists them.
pub static OPERATIONS: &[OpForm] = &[
    OpForm {
        op: "S3PutObjectTagging",
        title: "Replace all object tags",
        fields: &[f(
            "tagging.tags",
            "Tag set",
            "TagSet",
            Kind::Tags,
            "key=value, one per line; empty removes every tag",
        )],
    },
    OpForm {
        op: "S3AddObjectTagging",
        title: "Add object tags (keep the others)",
        fields: &[f("addtags.tags", "Tags to add", "TagSet", Kind::Tags, "key=value, one per line")],
    },
    OpForm {
        op: "S3RemoveObjectTagging",
        title: "Remove some object tags",
        fields: &[f("rmtags.keys", "Tag keys to remove", "TagKeys", Kind::List, "comma-separated")],
    },
    OpForm { op: "S3DeleteObjectTagging", title: "Delete all object tags", fields: &[] },
    OpForm {
        op: "S3PutObjectCopy",
        title: "Copy",
        fields: &[
            f("copy.target", "Destination bucket ARN", "TargetResource", Kind::Text, "arn:aws:s3:::bucket"),
            f("copy.prefix", "Destination key prefix", "TargetKeyPrefix", Kind::Text, ""),
            f("copy.storage_class", "Storage class", "StorageClass", Kind::Optional(&STORAGE_CLASSES), ""),
            f("copy.metadata", "Metadata directive", "MetadataDirective", Kind::Optional(&["COPY", "REPLACE"]), ""),
            f("copy.acl", "Canned ACL of the copies", "CannedAccessControlList", Kind::Optional(&CANNED_ACLS), ""),
            f("copy.checksum", "Checksum algorithm", "ChecksumAlgorithm", Kind::Optional(&CHECKSUM_ALGORITHMS), ""),
        ],
    },
    OpForm {
        op: "S3DeleteObject",
        title: "Delete objects",
        fields: &[f(
            "delete.noncurrent",
            "Also delete every non-current version",
            "DeleteNoncurrentVersions",
            Kind::Bool,
            "",
        )],
    },
    OpForm {
        op: "S3PutObjectAcl",
        title: "Replace access control list",
        fields: &[f(
            "acl.canned",
            "Canned ACL",
            "AccessControlPolicy.CannedAccessControlList",
            Kind::Optional(&CANNED_ACLS),
            "explicit grants: use More parameters",
        )],
    },
    OpForm {
        op: "S3InitiateRestoreObject",
        title: "Restore archived objects",
        fields: &[
            f("restore.days", "Days the restored copy is kept", "ExpirationInDays", Kind::Int, ""),
            f("restore.tier", "Retrieval tier", "GlacierJobTier", Kind::Optional(&["BULK", "STANDARD"]), ""),
        ],
    },
    OpForm {
        op: "S3PutObjectLegalHold",
        title: "Object Lock legal hold",
        fields: &[f("legalhold.status", "Legal hold", "LegalHold.Status", Kind::Select(&["ON", "OFF"]), "")],
    },
    OpForm {
        op: "S3PutObjectRetention",
        title: "Object Lock retention",
        fields: &[
            f("retention.mode", "Retention mode", "Retention.Mode", Kind::Optional(&OBJECT_LOCK_MODES), ""),
            f("retention.until", "Retain until", "Retention.RetainUntilDate", Kind::Text, "2027-01-01T00:00:00Z"),
            f("retention.bypass", "Bypass governance retention", "BypassGovernanceRetention", Kind::Bool, ""),
        ],
    },
    OpForm {
        op: "S3ComputeObjectChecksum",
        title: "Compute checksums",
        fields: &[
            f("checksum.algorithm", "Algorithm", "ChecksumAlgorithm", Kind::Select(&CHECKSUM_ALGORITHMS), ""),
            f("checksum.type", "Checksum type", "ChecksumType", Kind::Select(&["FULL_OBJECT", "COMPOSITE"]), ""),
        ],
    },
    OpForm {
        op: "S3UpdateObjectEncryption",
        title: "Update server-side encryption",
        fields: &[
            f("encryption.key", "KMS key ARN", "ObjectEncryption.SSE-KMS.KMSKeyArn", Kind::Text, ""),
            f(
                "encryption.bucket_key",
                "Bucket key enabled",
                "ObjectEncryption.SSE-KMS.BucketKeyEnabled",
                Kind::Bool,
                "",
            ),
        ],
    },
    OpForm { op: "S3ReplicateObject", title: "Replicate", fields: &[] },
    OpForm {
        op: "LambdaInvoke",
        title: "Invoke a function",
        fields: &[
            f("lambda.function", "Function ARN", "FunctionArn", Kind::Text, "arn:aws:lambda:…:function:name"),
            f(
                "lambda.schema",
                "Invocation schema version",
                "InvocationSchemaVersion",
                Kind::Optional(&["1.0", "2.0"]),
                "",
            ),
            f("lambda.args", "User arguments", "UserArguments", Kind::Map, "key=value, one per line (schema 2.0)"),
        ],
    },
];

/// The `ObjectEncryptionFilter` members a generator filter may match.
pub const GEN_ENCRYPTIONS: &[&str] = &["SSE-S3", "SSE-KMS", "DSSE-KMS", "SSE-C", "NOT-SSE"];

pub fn op_form(op: &str) -> Option<&'static OpForm> {
    OPERATIONS.iter().find(|o| o.op == op)
}

/// Errors by field name (or by section: `manifest`, `operation`, `report`, `general`).
pub type Errors = BTreeMap<String, String>;

/// The spec the form describes (and, when the user left a manifest's ETag empty, the field to look it up for), or
/// the errors to show beside its fields.
pub fn to_spec(v: &Values) -> Result<(JobSpec, Option<String>), Errors> {
    let mut errors = Errors::new();
    let mut spec = Map::new();
    operation_part(v, &mut spec, &mut errors);
    let etag_wanted = manifest_part(v, &mut spec, &mut errors);
    report_part(v, &mut spec, &mut errors);
    general_part(v, &mut spec, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let spec: JobSpec = serde_path_to_error::deserialize(Value::Object(spec)).map_err(|e| {
        let path = e.path().to_string();
        let mut errors = Errors::new();
        errors.insert(field_of(&path).into(), format!("{path}: {}", e.inner()));
        errors
    })?;
    Ok((spec, etag_wanted))
}

/// The operation and its parameters (the form's fields, then the "more parameters" JSON).
fn operation_part(v: &Values, spec: &mut Map<String, Value>, errors: &mut Errors) {
    let op_name = v.get("operation");
    match op_form(op_name) {
        None => {
            errors.insert("operation".into(), "choose an operation".into());
        }
        Some(form) => {
            let mut op = match v.get("op.extra") {
                "" => Value::Object(Map::new()),
                text => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(m)) => Value::Object(m),
                    Ok(_) => {
                        errors.insert("op.extra".into(), "must be a JSON object".into());
                        Value::Object(Map::new())
                    }
                    Err(e) => {
                        errors.insert("op.extra".into(), format!("not valid JSON: {e}"));
                        Value::Object(Map::new())
                    }
                },
            };
            for field in form.fields {
                match field_value(field, v) {
                    Ok(Some(x)) => put(&mut op, field.path, x),
                    Ok(None) => {}
                    Err(e) => {
                        errors.insert(field.name.into(), e);
                    }
                }
            }
            spec.insert("Operation".into(), json!({ op_name: op }));
        }
    }
}

/// The manifest (a CSV object, an inventory report) or the generator; the ETag field to look up, if left empty.
fn manifest_part(v: &Values, spec: &mut Map<String, Value>, errors: &mut Errors) -> Option<String> {
    let mut etag_wanted = None;
    match v.get("source") {
        "csv" | "inventory" => {
            let csv = v.get("source") == "csv";
            let (bucket, key) = if csv {
                (v.get("manifest.bucket"), v.get("manifest.key"))
            } else {
                (v.get("inventory.bucket"), v.get("inventory.key"))
            };
            let prefix = if csv { "manifest" } else { "inventory" };
            if bucket.is_empty() {
                errors.insert(format!("{prefix}.bucket"), "enter the bucket the manifest is in".into());
            }
            if key.is_empty() {
                errors.insert(format!("{prefix}.key"), "enter the manifest's key".into());
            }
            let etag = v.get(&format!("{prefix}.etag"));
            let mut location = json!({ "ObjectArn": format!("arn:aws:s3:::{bucket}/{key}") });
            if etag.is_empty() {
                etag_wanted = Some(format!("{prefix}.etag"));
            } else {
                location["ETag"] = json!(etag.trim_matches('"'));
            }
            let spec_part = if csv {
                let mut fields = vec!["Bucket", "Key"];
                if v.checked("manifest.versions") {
                    fields.push("VersionId");
                }
                json!({ "Format": "S3BatchOperations_CSV_20180820", "Fields": fields })
            } else {
                json!({ "Format": "S3InventoryReport_CSV_20161130" })
            };
            spec.insert("Manifest".into(), json!({ "Spec": spec_part, "Location": location }));
        }
        "generate" => {
            spec.insert("ManifestGenerator".into(), generator_part(v, errors));
        }
        _ => {
            errors.insert("source".into(), "choose where the list of objects comes from".into());
        }
    }
    etag_wanted
}

/// The manifest generator: the bucket, every filter, and where the generated manifest goes.
fn generator_part(v: &Values, errors: &mut Errors) -> Value {
    let bucket = v.get("gen.bucket");
    if bucket.is_empty() {
        errors.insert("gen.bucket".into(), "enter the bucket to list".into());
    }
    let filter = generator_filter(v, errors);
    let output = v.checked("gen.output");
    let mut generator = json!({
        "SourceBucket": format!("arn:aws:s3:::{bucket}"),
        "EnableManifestOutput": output,
    });
    if filter.as_object().is_some_and(|m| !m.is_empty()) {
        generator["Filter"] = filter;
    }
    if output {
        generator["ManifestOutputLocation"] = generator_output(v, errors);
    }
    json!({ "S3JobManifestGenerator": generator })
}

/// The generator's `Filter`: the key name, creation date, size, storage class, encryption and replication
/// constraints the form sets (an empty object when it sets none).
fn generator_filter(v: &Values, errors: &mut Errors) -> Value {
    let mut filter = Value::Object(Map::new());
    for (name, path) in [
        ("gen.prefixes", "KeyNameConstraint.MatchAnyPrefix"),
        ("gen.suffixes", "KeyNameConstraint.MatchAnySuffix"),
        ("gen.substrings", "KeyNameConstraint.MatchAnySubstring"),
    ] {
        let items = split_list(v.get(name));
        if !items.is_empty() {
            put(&mut filter, path, json!(items));
        }
    }
    for (name, path) in [("gen.created_after", "CreatedAfter"), ("gen.created_before", "CreatedBefore")] {
        match v.get(name) {
            "" => {}
            d if d.len() == 10 => put(&mut filter, path, json!(format!("{d}T00:00:00Z"))),
            d => put(&mut filter, path, json!(d)),
        }
    }
    for (name, path) in
        [("gen.larger_than", "ObjectSizeGreaterThanBytes"), ("gen.smaller_than", "ObjectSizeLessThanBytes")]
    {
        match parse_int(v.get(name)) {
            Ok(Some(n)) => put(&mut filter, path, json!(n)),
            Ok(None) => {}
            Err(e) => {
                errors.insert(name.into(), e);
            }
        }
    }
    let classes = v.all("gen.storage_class");
    if !classes.is_empty() {
        put(&mut filter, "MatchAnyStorageClass", json!(classes));
    }
    let enc: Vec<Value> = v.all("gen.encryption").iter().map(|e| json!({ *e: {} })).collect();
    if !enc.is_empty() {
        put(&mut filter, "MatchAnyObjectEncryption", Value::Array(enc));
    }
    let repl = v.all("gen.replication");
    if !repl.is_empty() {
        put(&mut filter, "ObjectReplicationStatuses", json!(repl));
    }
    if v.checked("gen.eligible") {
        put(&mut filter, "EligibleForReplication", json!(true));
    }
    filter
}

/// Where the generated manifest goes (`ManifestOutputLocation`).
fn generator_output(v: &Values, errors: &mut Errors) -> Value {
    let out_bucket = v.get("gen.output_bucket");
    if out_bucket.is_empty() {
        errors.insert("gen.output_bucket".into(), "enter where the generated manifest goes".into());
    }
    let mut loc = json!({
        "Bucket": format!("arn:aws:s3:::{out_bucket}"),
        "ManifestFormat": "S3InventoryReport_CSV_20211130",
    });
    if !v.get("gen.output_prefix").is_empty() {
        loc["ManifestPrefix"] = json!(v.get("gen.output_prefix"));
    }
    loc
}

/// The completion report.
fn report_part(v: &Values, spec: &mut Map<String, Value>, errors: &mut Errors) {
    if v.checked("report.enabled") {
        let bucket = v.get("report.bucket");
        if bucket.is_empty() {
            errors.insert("report.bucket".into(), "enter the bucket the report goes to".into());
        }
        let mut report = json!({
            "Enabled": true,
            "Bucket": format!("arn:aws:s3:::{bucket}"),
            "Format": "Report_CSV_20180820",
            "ReportScope": if v.get("report.scope") == "FailedTasksOnly" { "FailedTasksOnly" } else { "AllTasks" },
        });
        if !v.get("report.prefix").is_empty() {
            report["Prefix"] = json!(v.get("report.prefix"));
        }
        spec.insert("Report".into(), report);
    } else {
        spec.insert("Report".into(), json!({ "Enabled": false }));
    }
}

/// Priority, description, role, tags, dry run and rate limit.
fn general_part(v: &Values, spec: &mut Map<String, Value>, errors: &mut Errors) {
    match parse_int(v.get("priority")) {
        Ok(Some(p)) => {
            spec.insert("Priority".into(), json!(p));
        }
        Ok(None) => {
            errors.insert("priority".into(), "enter a priority (0 to 2147483647; higher runs first)".into());
        }
        Err(e) => {
            errors.insert("priority".into(), e);
        }
    }
    spec.insert("ConfirmationRequired".into(), json!(true));
    if !v.get("description").is_empty() {
        spec.insert("Description".into(), json!(v.get("description")));
    }
    if !v.get("role").is_empty() {
        spec.insert("RoleArn".into(), json!(v.get("role")));
    }
    match parse_pairs(v.get("tags")) {
        Ok(tags) if !tags.is_empty() => {
            let tags: Vec<Value> = tags.into_iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect();
            spec.insert("Tags".into(), Value::Array(tags));
        }
        Ok(_) => {}
        Err(e) => {
            errors.insert("tags".into(), e);
        }
    }
    if v.checked("dry_run") {
        spec.insert("DryRun".into(), json!(true));
    }
    match parse_int(v.get("rate_limit")) {
        Ok(Some(r)) => {
            spec.insert("RateLimit".into(), json!(r));
        }
        Ok(None) => {}
        Err(e) => {
            errors.insert("rate_limit".into(), e);
        }
    }
}

/// The form's values for an existing job's spec (Clone job).
pub fn from_spec(spec: &JobSpec) -> Values {
    let mut v = Values::default();
    let json = serde_json::to_value(spec).expect("a spec always serialises");
    operation_values(&mut v, spec, &json);
    manifest_values(&mut v, spec, &json);
    if let Some(g) = json.pointer("/ManifestGenerator/S3JobManifestGenerator") {
        generator_values(&mut v, g);
    }
    general_values(&mut v, spec, &json);
    v
}

/// The operation and its parameters; what the form has no field for goes to "more parameters" as JSON.
fn operation_values(v: &mut Values, spec: &JobSpec, json: &Value) {
    let op_name = spec.operation.name();
    v.set("operation", op_name);
    if let (Some(form), Some(op)) = (op_form(op_name), json.pointer(&format!("/Operation/{op_name}"))) {
        let mut rest = op.clone();
        for field in form.fields {
            if let Some(x) = get(op, field.path) {
                v.set(field.name, field_text(field.kind, x));
                remove(&mut rest, field.path);
            }
        }
        if rest.as_object().is_some_and(|m| !m.is_empty()) {
            v.set("op.extra", serde_json::to_string_pretty(&rest).unwrap_or_default());
        }
    }
}

/// A CSV or inventory manifest's location.
fn manifest_values(v: &mut Values, spec: &JobSpec, json: &Value) {
    if let Some(m) = &spec.manifest {
        let (bucket, key) = split_object_arn(&m.location.object_arn);
        let inventory =
            json.pointer("/Manifest/Spec/Format").and_then(Value::as_str) != Some("S3BatchOperations_CSV_20180820");
        let prefix = if inventory { "inventory" } else { "manifest" };
        v.set("source", if inventory { "inventory" } else { "csv" });
        v.set(format!("{prefix}.bucket"), bucket);
        v.set(format!("{prefix}.key"), key);
        if let Some(e) = &m.location.etag {
            v.set(format!("{prefix}.etag"), e.clone());
        }
        if json
            .pointer("/Manifest/Spec/Fields")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == "VersionId"))
        {
            v.set("manifest.versions", "on");
        }
    }
}

/// The manifest generator's bucket, filters and output.
fn generator_values(v: &mut Values, g: &Value) {
    v.set("source", "generate");
    let s = |p: &str| g.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    v.set("gen.bucket", s("/SourceBucket").trim_start_matches("arn:aws:s3:::"));
    let list = |p: &str| {
        g.pointer(p)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    v.set("gen.prefixes", list("/Filter/KeyNameConstraint/MatchAnyPrefix").join(", "));
    v.set("gen.suffixes", list("/Filter/KeyNameConstraint/MatchAnySuffix").join(", "));
    v.set("gen.substrings", list("/Filter/KeyNameConstraint/MatchAnySubstring").join(", "));
    v.set("gen.created_after", s("/Filter/CreatedAfter"));
    v.set("gen.created_before", s("/Filter/CreatedBefore"));
    for (name, p) in [
        ("gen.larger_than", "/Filter/ObjectSizeGreaterThanBytes"),
        ("gen.smaller_than", "/Filter/ObjectSizeLessThanBytes"),
    ] {
        if let Some(n) = g.pointer(p).and_then(Value::as_i64) {
            v.set(name, n.to_string());
        }
    }
    v.set_all("gen.storage_class", list("/Filter/MatchAnyStorageClass"));
    v.set_all("gen.replication", list("/Filter/ObjectReplicationStatuses"));
    let enc = g
        .pointer("/Filter/MatchAnyObjectEncryption")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| e.as_object()?.keys().next().cloned()).collect())
        .unwrap_or_default();
    v.set_all("gen.encryption", enc);
    if g.pointer("/Filter/EligibleForReplication") == Some(&json!(true)) {
        v.set("gen.eligible", "on");
    }
    if g.pointer("/EnableManifestOutput") == Some(&json!(true)) {
        v.set("gen.output", "on");
        v.set("gen.output_bucket", s("/ManifestOutputLocation/Bucket").trim_start_matches("arn:aws:s3:::"));
        v.set("gen.output_prefix", s("/ManifestOutputLocation/ManifestPrefix"));
    }
}

/// The report, priority, description, role, tags, dry run and rate limit.
fn general_values(v: &mut Values, spec: &JobSpec, json: &Value) {
    if spec.report.enabled {
        v.set("report.enabled", "on");
        v.set(
            "report.bucket",
            spec.report.bucket.as_deref().and_then(s3batch_core::arn::parse_bucket_arn).unwrap_or_default(),
        );
        v.set("report.prefix", spec.report.prefix.clone().unwrap_or_default());
        v.set("report.scope", json.pointer("/Report/ReportScope").and_then(Value::as_str).unwrap_or("AllTasks"));
    }
    v.set("priority", spec.priority.to_string());
    v.set("description", spec.description.clone().unwrap_or_default());
    v.set("role", spec.role_arn.clone().unwrap_or_default());
    v.set("tags", spec.tags.iter().map(|t| format!("{}={}", t.key, t.value)).collect::<Vec<_>>().join("\n"));
    if spec.dry_run {
        v.set("dry_run", "on");
    }
    if let Some(r) = spec.rate_limit {
        v.set("rate_limit", r.to_string());
    }
}

/// The values of a new form.
pub fn defaults() -> Values {
    let mut v = Values::default();
    v.set("operation", "S3PutObjectTagging");
    v.set("source", "csv");
    v.set("report.enabled", "on");
    v.set("report.scope", "AllTasks");
    v.set("priority", "10");
    v
}

/// Which form field an error found at a spec path (or a service message) belongs to.
pub fn field_of(text: &str) -> &'static str {
    let t = text.to_ascii_lowercase();
    if t.contains("manifestgenerator") || t.contains("generator") {
        "gen.bucket"
    } else if t.contains("manifest") || t.contains("etag") {
        "manifest"
    } else if t.contains("report") {
        "report"
    } else if t.contains("priority") {
        "priority"
    } else if t.contains("description") {
        "description"
    } else if t.contains("role") {
        "role"
    } else if t.contains("ratelimit") || t.contains("rate limit") {
        "rate_limit"
    } else if t.contains("tags") && !t.contains("operation") && !t.contains("tagset") {
        "tags"
    } else if t.contains("operation") || OPERATIONS.iter().any(|o| t.contains(&o.op.to_ascii_lowercase())) {
        "operation"
    } else {
        "general"
    }
}

fn field_value(field: &Field, v: &Values) -> Result<Option<Value>, String> {
    let text = v.get(field.name);
    Ok(match field.kind {
        Kind::Text | Kind::Optional(_) if text.is_empty() => None,
        Kind::Text => Some(json!(text)),
        Kind::Select(choices) | Kind::Optional(choices) => {
            if !choices.contains(&text) {
                return Err(format!("'{text}' is not one of the choices"));
            }
            Some(json!(text))
        }
        Kind::Int => parse_int(text)?.map(|n| json!(n)),
        Kind::Bool => v.checked(field.name).then(|| json!(true)),
        Kind::Tags => {
            let pairs = parse_pairs(text)?;
            Some(Value::Array(pairs.into_iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect()))
        }
        Kind::List => {
            let items = split_list(text);
            (!items.is_empty()).then(|| json!(items))
        }
        Kind::Map => {
            let pairs = parse_pairs(text)?;
            (!pairs.is_empty()).then(|| Value::Object(pairs.into_iter().map(|(k, v)| (k, json!(v))).collect()))
        }
    })
}

fn field_text(kind: Kind, x: &Value) -> String {
    match kind {
        Kind::Tags => x
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| format!("{}={}", t["Key"].as_str().unwrap_or(""), t["Value"].as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
        Kind::List => {
            x.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()
        }
        Kind::Map => x
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default(),
        Kind::Bool => {
            if x == &json!(true) {
                "on".into()
            } else {
                String::new()
            }
        }
        _ => match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    }
}

fn parse_int(text: &str) -> Result<Option<i64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>().map(Some).map_err(|_| format!("'{text}' is not a whole number"))
}

/// `key=value` lines; blank lines are skipped.
fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, val)) = line.split_once('=') else {
            return Err(format!("line {}: '{line}' is not key=value", i + 1));
        };
        out.push((k.trim().to_string(), val.trim().to_string()));
    }
    Ok(out)
}

fn split_list(text: &str) -> Vec<String> {
    text.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn split_object_arn(arn: &str) -> (String, String) {
    let rest = arn.strip_prefix("arn:aws:s3:::").unwrap_or(arn);
    match rest.split_once('/') {
        Some((b, k)) => (b.to_string(), k.to_string()),
        None => (rest.to_string(), String::new()),
    }
}

fn put(root: &mut Value, path: &str, x: Value) {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let m = cur.as_object_mut().expect("made an object above");
        if i + 1 == parts.len() {
            m.insert((*p).to_string(), x);
            return;
        }
        cur = m.entry((*p).to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

fn get<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |cur, p| cur.get(p))
}

fn remove(root: &mut Value, path: &str) {
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (p.split('.').try_fold(&mut *root, |cur, p| cur.get_mut(p)), l),
        None => (Some(&mut *root), path),
    };
    if let Some(Value::Object(m)) = parent {
        m.remove(last);
    }
    // Drop objects the removal left empty.
    if let Some((p, _)) = path.rsplit_once('.')
        && get(root, p).and_then(Value::as_object).is_some_and(Map::is_empty)
    {
        remove(root, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        Values::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn a_tagging_job_over_a_csv_manifest() {
        let v = values(&[
            ("operation", "S3PutObjectTagging"),
            ("tagging.tags", "team=photos\nstage = done\n"),
            ("source", "csv"),
            ("manifest.bucket", "manifests"),
            ("manifest.key", "m.csv"),
            ("report.enabled", "on"),
            ("report.bucket", "reports"),
            ("report.scope", "FailedTasksOnly"),
            ("priority", "20"),
            ("description", "tag photos"),
        ]);
        let (spec, etag) = to_spec(&v).unwrap();
        assert_eq!(etag.as_deref(), Some("manifest.etag"));
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["Operation"]["S3PutObjectTagging"]["TagSet"][1], json!({"Key": "stage", "Value": "done"}));
        assert_eq!(json["Manifest"]["Location"]["ObjectArn"], "arn:aws:s3:::manifests/m.csv");
        assert_eq!(json["Report"]["ReportScope"], "FailedTasksOnly");
        assert!(spec.confirmation_required);
        // And back: Clone job fills the form with the same values.
        let again = from_spec(&spec);
        assert_eq!(again.get("tagging.tags"), "team=photos\nstage=done");
        assert_eq!(again.get("manifest.key"), "m.csv");
        assert_eq!(again.get("report.scope"), "FailedTasksOnly");
        assert_eq!(serde_json::to_value(to_spec(&again).unwrap().0).unwrap(), json);
    }

    #[test]
    fn every_operation_round_trips_through_the_form() {
        for form in OPERATIONS {
            let mut v = defaults();
            v.set("operation", form.op);
            v.set("manifest.bucket", "b");
            v.set("manifest.key", "k");
            v.set("manifest.etag", "e");
            v.set("report.bucket", "r");
            for field in form.fields {
                let text = match field.kind {
                    Kind::Text => "arn:aws:s3:::x".into(),
                    Kind::Int => "3".into(),
                    Kind::Bool => "on".into(),
                    Kind::Select(c) | Kind::Optional(c) => c.last().unwrap().to_string(),
                    Kind::Tags | Kind::Map => "a=b".into(),
                    Kind::List => "a, b".into(),
                };
                v.set(field.name, text);
            }
            let Ok((spec, _)) = to_spec(&v) else { panic!("{}: {:?}", form.op, to_spec(&v).err()) };
            assert_eq!(spec.operation.name(), form.op);
            let back = from_spec(&spec);
            for field in form.fields {
                assert_eq!(back.get(field.name), v.get(field.name), "{} {}", form.op, field.name);
            }
        }
    }

    #[test]
    fn errors_land_beside_their_fields() {
        let v = values(&[("operation", "S3PutObjectTagging"), ("source", "csv"), ("priority", "x"), ("tags", "nokey")]);
        let e = to_spec(&v).unwrap_err();
        assert!(e.contains_key("manifest.bucket") && e.contains_key("manifest.key"), "{e:?}");
        assert!(e["priority"].contains("not a whole number"));
        assert!(e["tags"].contains("not key=value"));
        let v = values(&[
            ("operation", "S3PutObjectCopy"),
            ("op.extra", "{\"Nope\": 1}"),
            ("source", "generate"),
            ("gen.bucket", "src"),
            ("priority", "1"),
        ]);
        let e = to_spec(&v).unwrap_err();
        assert!(e.contains_key("operation"), "{e:?}");
    }

    #[test]
    fn a_generator_with_every_filter() {
        let v = values(&[
            ("operation", "S3DeleteObject"),
            ("source", "generate"),
            ("gen.bucket", "src"),
            ("gen.prefixes", "a/, b/"),
            ("gen.suffixes", ".jpg"),
            ("gen.created_after", "2026-01-01"),
            ("gen.larger_than", "10"),
            ("gen.storage_class", "STANDARD"),
            ("gen.storage_class", "GLACIER"),
            ("gen.encryption", "SSE-S3"),
            ("gen.replication", "FAILED"),
            ("gen.eligible", "on"),
            ("gen.output", "on"),
            ("gen.output_bucket", "out"),
            ("priority", "1"),
        ]);
        let (spec, etag) = to_spec(&v).unwrap();
        assert!(etag.is_none());
        let back = from_spec(&spec);
        for k in ["gen.prefixes", "gen.suffixes", "gen.larger_than", "gen.output_bucket", "gen.eligible"] {
            assert_eq!(back.get(k), v.get(k), "{k}");
        }
        assert_eq!(back.all("gen.storage_class"), vec!["STANDARD", "GLACIER"]);
        assert_eq!(back.all("gen.encryption"), vec!["SSE-S3"]);
        assert_eq!(back.get("gen.created_after"), "2026-01-01T00:00:00Z");
    }
}
