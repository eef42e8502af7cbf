//! Property tests (the fuzz target) of the S3 Control request parsers: whatever bytes arrive, the parser answers
//! Ok or a BadRequestException, never a panic; and what the renderer writes parses back to the same value.

use proptest::prelude::*;
use s3batch_api::s3control::{parse_create_job, parse_put_tagging, wire_error};
use s3batch_api::xml::{self, S3CONTROL};

/// Element names that mean something to the parser, plus noise.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("CreateJobRequest".to_string()),
        Just("Operation".to_string()),
        Just("S3PutObjectTagging".to_string()),
        Just("S3DeleteObjectTagging".to_string()),
        Just("TagSet".to_string()),
        Just("Tags".to_string()),
        Just("member".to_string()),
        Just("Key".to_string()),
        Just("Value".to_string()),
        Just("Priority".to_string()),
        Just("Manifest".to_string()),
        Just("Location".to_string()),
        Just("UserArguments".to_string()),
        Just("entry".to_string()),
        Just("key".to_string()),
        "[A-Za-z][A-Za-z0-9-]{0,8}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("10".to_string()),
        Just("true".to_string()),
        Just("&amp;&lt;&#65;&#x10FFFF;".to_string()),
        Just("&bogus;".to_string()),
        Just("<![CDATA[x]]>".to_string()),
        "[ -~]{0,20}",
        "\\PC{0,10}",
    ]
}

/// Random trees of known and unknown elements.
fn tree() -> impl Strategy<Value = String> {
    let leaf = (name(), text()).prop_map(|(n, t)| format!("<{n}>{t}</{n}>"));
    leaf.prop_recursive(6, 64, 6, |inner| {
        (name(), prop::collection::vec(inner, 0..6)).prop_map(|(n, kids)| format!("<{n}>{}</{n}>", kids.concat()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = xml::parse(&body);
        if let Err(e) = parse_create_job(&body) {
            prop_assert_eq!(wire_error(e).code, "BadRequestException");
        }
        let _ = parse_put_tagging(&body);
    }

    #[test]
    fn structured_trees_never_panic(inner in tree(), wrap in any::<bool>()) {
        let body = if wrap { format!("<CreateJobRequest>{inner}</CreateJobRequest>") } else { inner };
        if let Ok(el) = xml::parse(body.as_bytes()) {
            let _ = S3CONTROL.to_json(&el);
        }
        if let Err(e) = parse_create_job(body.as_bytes()) {
            let e = wire_error(e);
            prop_assert_eq!(e.code, "BadRequestException");
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn tags_render_and_parse_back(tags in prop::collection::vec(("[\\PC&&[^\\u{0}]]{1,12}", "\\PC{0,12}"), 0..8)) {
        let value = serde_json::json!({
            "Tags": tags.iter().map(|(k, v)| serde_json::json!({"Key": k, "Value": v})).collect::<Vec<_>>()
        });
        let mut out = String::new();
        S3CONTROL.render(&mut out, "PutJobTaggingRequest", &value);
        let back = parse_put_tagging(out.as_bytes()).expect("rendered XML parses");
        prop_assert_eq!(back.len(), tags.len());
        for (t, (k, v)) in back.iter().zip(&tags) {
            prop_assert_eq!(&t.key, k);
            prop_assert_eq!(&t.value, v);
        }
    }
}
