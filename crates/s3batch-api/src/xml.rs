//! The XML of the S3 Control (`rest-xml`) and COS dialects, both ways, through one table of shapes.
//!
//! Requests are parsed into a small element tree with hard limits (depth, element count, text size; no DTDs, so
//! no entity expansion), then turned into JSON by the shape tables below — which element names are lists (items
//! under any name, `member` on output), which are maps (`entry`/`key`/`value`), which hold numbers or booleans, and
//! which are structures that may be empty — and deserialized into the same serde types the JSON API uses. Responses
//! go the other way: a serde value rendered with `member` list items, `entry` maps and empty elements for empty
//! structures. Element order never matters on input (botocore writes model order, the Rust SDK alphabetical).

use std::fmt::Write as _;

use quick_xml::events::Event;
use serde_json::{Map, Value};

/// Deepest element nesting accepted (the deepest real request is about 9 levels).
pub const MAX_DEPTH: usize = 32;
/// Most elements in one request.
pub const MAX_ELEMENTS: usize = 20_000;
/// Longest text of one element, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;

/// A request body that is not acceptable XML, or does not fit the shapes. The message says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XmlError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError(m.into()))
}

/// One element: its local name (namespace prefixes dropped), its text, its children in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Parse a request body into its root element, within the limits above.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError("the request body is not UTF-8".into()))?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut tree = Tree::default();
    loop {
        let ev = reader.read_event().map_err(|e| XmlError(format!("malformed XML: {e}")))?;
        match ev {
            Event::Start(_) | Event::Empty(_) if tree.root.is_some() => {
                return err("malformed XML: content after the root element");
            }
            Event::Start(s) => tree.open(local_name(s.local_name().as_ref())?)?,
            Event::Empty(s) => tree.empty(local_name(s.local_name().as_ref())?)?,
            Event::End(_) => tree.close()?,
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|e| XmlError(format!("malformed XML text: {e}")))?;
                tree.text(&s)?;
            }
            Event::GeneralRef(r) => tree.text(&resolve_reference(&r)?)?,
            Event::CData(c) => {
                let s = c.xml10_content().map_err(|e| XmlError(format!("malformed CDATA: {e}")))?;
                tree.text(&s)?;
            }
            Event::DocType(_) => return err("DTDs are not allowed in requests"),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    tree.finish()
}

/// The element tree as the parser builds it: the open elements, the root once closed, and how many elements so far.
#[derive(Default)]
struct Tree {
    stack: Vec<Element>,
    root: Option<Element>,
    count: usize,
}

impl Tree {
    /// Count one more element, within [`MAX_ELEMENTS`].
    fn count_one(&mut self) -> Result<(), XmlError> {
        self.count += 1;
        if self.count > MAX_ELEMENTS {
            return err(format!("the XML has more than {MAX_ELEMENTS} elements"));
        }
        Ok(())
    }

    /// A start tag: a new open element, within [`MAX_DEPTH`].
    fn open(&mut self, name: String) -> Result<(), XmlError> {
        if self.stack.len() >= MAX_DEPTH {
            return err(format!("the XML is nested deeper than {MAX_DEPTH} levels"));
        }
        self.count_one()?;
        self.stack.push(Element { name, ..Default::default() });
        Ok(())
    }

    /// An empty-element tag: a child of the open element (or the root).
    fn empty(&mut self, name: String) -> Result<(), XmlError> {
        self.count_one()?;
        self.attach(Element { name, ..Default::default() });
        Ok(())
    }

    /// An end tag: the open element is done.
    fn close(&mut self) -> Result<(), XmlError> {
        let el = self.stack.pop().ok_or_else(|| XmlError("malformed XML: unbalanced end tag".into()))?;
        if !el.children.is_empty() && !el.text.trim().is_empty() {
            return err(format!("<{}> mixes text and elements", el.name));
        }
        self.attach(el);
        Ok(())
    }

    fn attach(&mut self, el: Element) {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(el),
            None => self.root = Some(el),
        }
    }

    fn text(&mut self, s: &str) -> Result<(), XmlError> {
        push_text(&mut self.stack, &self.root, s)
    }

    /// The root, once the document has ended.
    fn finish(self) -> Result<Element, XmlError> {
        if !self.stack.is_empty() {
            return err("malformed XML: the document ends inside an element");
        }
        self.root.ok_or_else(|| XmlError("the request body holds no XML element".into()))
    }
}

/// A character reference or one of the five predefined entities (there are no DTDs to define others).
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Result<String, XmlError> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => Ok(c.to_string()),
        Ok(None) => {
            let name = r.decode().map_err(|e| XmlError(format!("malformed XML entity: {e}")))?;
            quick_xml::escape::resolve_predefined_entity(&name)
                .map(str::to_string)
                .ok_or_else(|| XmlError(format!("unknown XML entity &{name};")))
        }
        Err(e) => err(format!("malformed XML character reference: {e}")),
    }
}

fn local_name(raw: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(raw).map(str::to_string).map_err(|_| XmlError("an element name is not UTF-8".into()))
}

fn push_text(stack: &mut [Element], root: &Option<Element>, s: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(el) => {
            if el.text.len() + s.len() > MAX_TEXT {
                return err(format!("<{}> holds more than {MAX_TEXT} bytes of text", el.name));
            }
            el.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None if root.is_some() => err("malformed XML: text after the root element"),
        None => err("malformed XML: text before the root element"),
    }
}

/// The shapes of both dialects, by element name.
pub struct Shapes {
    /// Lists: their items may have any name on input.
    pub lists: &'static [&'static str],
    /// Lists whose items are structures (an empty item is `{}`, not `""`).
    pub struct_lists: &'static [&'static str],
    /// Maps written `<entry><key/><value/></entry>`.
    pub maps: &'static [&'static str],
    pub integers: &'static [&'static str],
    pub booleans: &'static [&'static str],
    /// Structures that may be written empty (`<S3DeleteObjectTagging />`).
    pub structs: &'static [&'static str],
    /// Lists whose items are rendered under their own name instead of `member`: `(list, item)`.
    pub item_names: &'static [(&'static str, &'static str)],
}

/// The S3 Control shapes (plus s3batch's extension operations).
pub static S3CONTROL: Shapes = Shapes {
    lists: &[
        "Tags",
        "TagSet",
        "NewObjectTagging",
        "AccessControlGrants",
        "Grants",
        "Fields",
        "FailureReasons",
        "Jobs",
        "MatchAnyPrefix",
        "MatchAnySuffix",
        "MatchAnySubstring",
        "MatchAnyStorageClass",
        "ObjectReplicationStatuses",
        "MatchAnyObjectEncryption",
        "TagKeys",
    ],
    struct_lists: &[
        "Tags",
        "TagSet",
        "NewObjectTagging",
        "AccessControlGrants",
        "Grants",
        "FailureReasons",
        "Jobs",
        "MatchAnyObjectEncryption",
    ],
    maps: &["UserMetadata", "UserArguments"],
    integers: &[
        "Priority",
        "ExpirationInDays",
        "ObjectSizeGreaterThanBytes",
        "ObjectSizeLessThanBytes",
        "ContentLength",
        "TotalNumberOfTasks",
        "NumberOfTasksSucceeded",
        "NumberOfTasksFailed",
        "ElapsedTimeInActiveSeconds",
        "RateLimit",
        "Days",
        "Years",
    ],
    booleans: &[
        "ConfirmationRequired",
        "Enabled",
        "RequesterPays",
        "BucketKeyEnabled",
        "BypassGovernanceRetention",
        "EnableManifestOutput",
        "EligibleForReplication",
        "RequesterCharged",
        "DeleteNoncurrentVersions",
        "MergeMetadata",
        "MergeTagging",
        "MergeAccessControlGrants",
        "DryRun",
    ],
    structs: &[
        "Operation",
        "Manifest",
        "Spec",
        "Location",
        "Report",
        "ManifestGenerator",
        "GeneratedManifestDescriptor",
        "S3JobManifestGenerator",
        "ManifestOutputLocation",
        "ManifestEncryption",
        "Filter",
        "KeyNameConstraint",
        "ObjectEncryption",
        "SSE-S3",
        "SSE-KMS",
        "DSSE-KMS",
        "SSE-C",
        "NOT-SSE",
        "LambdaInvoke",
        "S3PutObjectCopy",
        "S3PutObjectAcl",
        "S3PutObjectTagging",
        "S3DeleteObjectTagging",
        "S3InitiateRestoreObject",
        "S3PutObjectLegalHold",
        "S3PutObjectRetention",
        "S3ReplicateObject",
        "S3ComputeObjectChecksum",
        "S3UpdateObjectEncryption",
        "S3DeleteObject",
        "S3AddObjectTagging",
        "S3RemoveObjectTagging",
        "NewObjectMetadata",
        "AccessControlPolicy",
        "AccessControlList",
        "Owner",
        "Grantee",
        "LegalHold",
        "Retention",
        "ObjectLockEventHoldDuration",
        "EventHoldDuration",
    ],
    item_names: &[("MatchAnyObjectEncryption", "ObjectEncryption")],
};

impl Shapes {
    /// The JSON value of an element's content (its name is the key its parent gives it).
    pub fn to_json(&self, el: &Element) -> Result<Value, XmlError> {
        let name = el.name.as_str();
        if self.lists.contains(&name) {
            if el.children.is_empty() && !el.text.trim().is_empty() {
                return err(format!("<{name}> must hold a list of elements, not text"));
            }
            let structs = self.struct_lists.contains(&name);
            let items = el
                .children
                .iter()
                .map(|item| {
                    if item.children.is_empty() {
                        Ok(if structs { Value::Object(Map::new()) } else { Value::String(item.text.clone()) })
                    } else {
                        self.object(item)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Value::Array(items));
        }
        if self.maps.contains(&name) {
            let mut map = Map::new();
            for entry in &el.children {
                let key = entry.child("key").ok_or_else(|| XmlError(format!("an entry of <{name}> has no <key>")))?;
                let value = entry.child("value").map(|v| v.text.clone()).unwrap_or_default();
                if map.insert(key.text.clone(), Value::String(value)).is_some() {
                    return err(format!("<{name}> has the key '{}' twice", key.text));
                }
            }
            return Ok(Value::Object(map));
        }
        if !el.children.is_empty() || self.structs.contains(&name) {
            return self.object(el);
        }
        let text = el.text.trim();
        if self.integers.contains(&name) {
            return text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| XmlError(format!("<{name}> must be an integer, got '{}'", el.text)));
        }
        if self.booleans.contains(&name) {
            return match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => err(format!("<{name}> must be true or false, got '{}'", el.text)),
            };
        }
        Ok(Value::String(el.text.clone()))
    }

    fn object(&self, el: &Element) -> Result<Value, XmlError> {
        if el.children.is_empty() && !el.text.trim().is_empty() {
            return err(format!("<{}> must hold elements, not text", el.name));
        }
        let mut map = Map::new();
        for c in &el.children {
            if map.insert(c.name.clone(), self.to_json(c)?).is_some() {
                return err(format!("<{}> appears twice in <{}>", c.name, el.name));
            }
        }
        Ok(Value::Object(map))
    }

    /// Render `value` as the element `name`. Nulls are left out; lists get `member` items (`item_names` names
    /// the items of lists that have their own item name, like `MatchAnyObjectEncryption`'s `ObjectEncryption`).
    pub fn render(&self, out: &mut String, name: &str, value: &Value) {
        match value {
            Value::Null => {}
            Value::Bool(b) => leaf(out, name, if *b { "true" } else { "false" }),
            Value::Number(n) => leaf(out, name, &n.to_string()),
            Value::String(s) => leaf(out, name, s),
            Value::Array(items) => {
                if items.is_empty() {
                    let _ = write!(out, "<{name}/>");
                    return;
                }
                let item = self.item_names.iter().find(|(list, _)| *list == name).map_or("member", |(_, item)| *item);
                let _ = write!(out, "<{name}>");
                for v in items {
                    self.render(out, item, v);
                }
                let _ = write!(out, "</{name}>");
            }
            Value::Object(map) if self.maps.contains(&name) => {
                let _ = write!(out, "<{name}>");
                for (k, v) in map {
                    out.push_str("<entry>");
                    leaf(out, "key", k);
                    self.render(out, "value", v);
                    out.push_str("</entry>");
                }
                let _ = write!(out, "</{name}>");
            }
            Value::Object(map) => {
                if map.values().all(Value::is_null) {
                    let _ = write!(out, "<{name}/>");
                    return;
                }
                let _ = write!(out, "<{name}>");
                for (k, v) in map {
                    self.render(out, k, v);
                }
                let _ = write!(out, "</{name}>");
            }
        }
    }
}

fn leaf(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", quick_xml::escape::escape(text));
}

/// Deserialize JSON into a serde type, with the path of the failing member in the message.
pub fn from_json<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Result<T, XmlError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            XmlError(format!("{what}: {inner}"))
        } else {
            XmlError(format!("{what}.{path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(xml: &str) -> Value {
        let el = parse(xml.as_bytes()).unwrap();
        S3CONTROL.to_json(&el).unwrap()
    }

    #[test]
    fn lists_maps_numbers_and_empty_structures() {
        let v = j(r#"<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">
            <Priority>10</Priority><ConfirmationRequired>false</ConfirmationRequired>
            <Operation><S3DeleteObjectTagging /></Operation>
            <Tags><member><Key>k</Key><Value></Value></member><Tag><Key>a</Key><Value>b</Value></Tag></Tags>
            <Manifest><Spec><Fields><member>Bucket</member><member>Key</member></Fields></Spec></Manifest>
            <X><UserArguments><entry><key>a</key><value>1 &amp; 2</value></entry></UserArguments></X>
        </CreateJobRequest>"#);
        assert_eq!(v["Priority"], 10);
        assert_eq!(v["ConfirmationRequired"], false);
        assert_eq!(v["Operation"]["S3DeleteObjectTagging"], serde_json::json!({}));
        assert_eq!(v["Tags"][0]["Value"], "");
        assert_eq!(v["Tags"][1]["Key"], "a", "items may have any name on input");
        assert_eq!(v["Manifest"]["Spec"]["Fields"], serde_json::json!(["Bucket", "Key"]));
        assert_eq!(v["X"]["UserArguments"]["a"], "1 & 2");
    }

    #[test]
    fn render_round_trips() {
        let v = serde_json::json!({"Tags": [{"Key": "k", "Value": "<&>"}], "Jobs": [], "N": 3, "B": true,
            "Operation": {"S3ReplicateObject": {}}, "UserArguments": {"k": "v"}, "Gone": null,
            "MatchAnyObjectEncryption": [{"SSE-S3": {}}]});
        let mut out = String::new();
        S3CONTROL.render(&mut out, "R", &v);
        assert!(out.contains("<Tags><member><Key>k</Key><Value>&lt;&amp;&gt;</Value></member></Tags>"), "{out}");
        assert!(out.contains("<Jobs/>") && out.contains("<S3ReplicateObject/>") && !out.contains("Gone"), "{out}");
        assert!(out.contains("<entry><key>k</key><value>v</value></entry>"), "{out}");
        assert!(out.contains("<MatchAnyObjectEncryption><ObjectEncryption><SSE-S3/></ObjectEncryption>"), "{out}");
        let back = S3CONTROL.to_json(&parse(out.as_bytes()).unwrap()).unwrap();
        assert_eq!(back["Tags"], v["Tags"]);
        assert_eq!(back["UserArguments"], v["UserArguments"]);
    }

    #[test]
    fn hostile_and_malformed_input_is_refused() {
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><r>&b;</r>"#;
        let huge = format!("<a>{}</a>", "x".repeat(MAX_TEXT + 1));
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS + 1));
        for bad in
            ["", "not xml", "<a>", "<a></b>", "<a/><b/>", "<a>x<b/></a>", "<a>&unknown;</a>", bomb, &deep, &huge, &many]
        {
            assert!(parse(bad.as_bytes()).is_err(), "accepted: {}", &bad[..bad.len().min(60)]);
        }
        assert!(parse(&[0xff, 0xfe]).is_err());
        let el = parse(b"<P><Priority>ten</Priority></P>").unwrap();
        assert!(S3CONTROL.to_json(&el).unwrap_err().0.contains("integer"));
        let el = parse(b"<P><Priority>1</Priority><Priority>2</Priority></P>").unwrap();
        assert!(S3CONTROL.to_json(&el).unwrap_err().0.contains("twice"));
    }
}
