//! Bucket and object ARNs as S3 Batch Operations uses them: `arn:aws:s3:::bucket` and
//! `arn:aws:s3:::bucket/key`.
//!
//! Tencent COS writes the same things as `qcs::cos:<region>:uid/<appid>:<bucket>[/<key>]` (or with an empty
//! account part, `qcs::cos:<region>::<bucket>[/<key>]`). Only the COS front end reads those ([`parse_cos_arn`]):
//! it turns them into the AWS form at its boundary, so the engine, the report writer and every other view read
//! one form.

/// Split an object ARN `arn:<partition>:s3:::<bucket>/<key>` at the first `/` after `:::`.
/// The key is returned exactly as written (no decoding).
pub fn parse_object_arn(arn: &str) -> Option<(String, String)> {
    let rest = s3_resource(arn)?;
    let (bucket, key) = rest.split_once('/')?;
    if !valid_bucket_name(bucket) || key.is_empty() {
        return None;
    }
    Some((bucket.to_string(), key.to_string()))
}

/// The bucket name of a bucket ARN `arn:<partition>:s3:::<bucket>`.
pub fn parse_bucket_arn(arn: &str) -> Option<String> {
    let bucket = s3_resource(arn)?;
    valid_bucket_name(bucket).then(|| bucket.to_string())
}

/// `arn:aws:s3:::<bucket>`.
pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// `arn:aws:s3:::<bucket>/<key>`.
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

fn s3_resource(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (a, partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (a == "arn" && !partition.is_empty() && service == "s3" && region.is_empty() && account.is_empty())
        .then_some(resource)
}

/// Bucket names as S3-compatible stores accept them: 3..63 characters of lower-case letters, digits, `.`, `-`
/// (and `_`, which several stores allow), starting and ending with a letter or digit.
pub fn valid_bucket_name(b: &str) -> bool {
    let bytes = b.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// A COS resource ARN, split: `qcs::cos:<region>:<account>:<bucket>[/<key>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosArn {
    pub region: String,
    /// The APPID of `uid/<appid>`, if the ARN names one.
    pub appid: Option<String>,
    pub bucket: String,
    /// The key exactly as written (no decoding); `None` for a bucket ARN.
    pub key: Option<String>,
}

/// Parse a COS bucket or object ARN. The region is required, the account part is empty or `uid/<appid>`, the
/// bucket a valid bucket name (COS names end in `-<appid>`), the key (if any) not empty.
pub fn parse_cos_arn(arn: &str) -> Option<CosArn> {
    let rest = arn.strip_prefix("qcs::cos:")?;
    let mut parts = rest.splitn(3, ':');
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return None;
    }
    let appid = match account {
        "" => None,
        a => {
            let id = a.strip_prefix("uid/")?;
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            Some(id.to_string())
        }
    };
    let (bucket, key) = match resource.split_once('/') {
        Some((b, k)) if !k.is_empty() => (b, Some(k.to_string())),
        Some(_) => return None,
        None => (resource, None),
    };
    valid_bucket_name(bucket).then(|| CosArn { region: region.into(), appid, bucket: bucket.into(), key })
}

/// `qcs::cos:<region>:uid/<appid>:<bucket>`.
pub fn cos_bucket_arn(region: &str, appid: &str, bucket: &str) -> String {
    format!("qcs::cos:{region}:uid/{appid}:{bucket}")
}

/// `qcs::cos:<region>:uid/<appid>:<bucket>/<key>`.
pub fn cos_object_arn(region: &str, appid: &str, bucket: &str, key: &str) -> String {
    format!("qcs::cos:{region}:uid/{appid}:{bucket}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_arns() {
        assert_eq!(
            parse_object_arn("arn:aws:s3:::mbk/dir/manifest.csv"),
            Some(("mbk".into(), "dir/manifest.csv".into()))
        );
        assert_eq!(parse_object_arn("arn:aws:s3:::mbk"), None);
        assert_eq!(parse_object_arn("arn:aws:s3:::mbk/"), None);
        assert_eq!(parse_object_arn("arn:aws:s3:us-east-1::mb/k"), None);
        assert_eq!(parse_object_arn("arn:aws:sqs:::mbk/k"), None);
        assert_eq!(parse_object_arn("arn:aws-cn:s3:::mbk/k%20x"), Some(("mbk".into(), "k%20x".into())));
    }

    #[test]
    fn cos_arns() {
        let a = parse_cos_arn("qcs::cos:ap-chengdu:uid/1250000000:sourcebucket-1250000000/manifests/m.csv").unwrap();
        assert_eq!(a.region, "ap-chengdu");
        assert_eq!(a.appid.as_deref(), Some("1250000000"));
        assert_eq!(a.bucket, "sourcebucket-1250000000");
        assert_eq!(a.key.as_deref(), Some("manifests/m.csv"));
        let b = parse_cos_arn("qcs::cos:ap-chengdu::examplebucket-1250000000").unwrap();
        assert_eq!((b.appid, b.bucket.as_str(), b.key), (None, "examplebucket-1250000000", None));
        let k = parse_cos_arn("qcs::cos:ap-beijing::b-1250000000/a:b%20c").unwrap();
        assert_eq!(k.key.as_deref(), Some("a:b%20c"), "keys keep colons and encoding as written");
        for bad in [
            "arn:aws:s3:::b/k",
            "qcs::cos:::bkt-1/k",
            "qcs::cos:ap-chengdu:1250000000:bkt-1",
            "qcs::cos:ap-chengdu:uid/:bkt-1",
            "qcs::cos:ap-chengdu::Bkt",
            "qcs::cos:ap-chengdu::bkt-1/",
            "qcs::cam::uin/100000000001:roleName/COS_Batch_QcsRole",
        ] {
            assert_eq!(parse_cos_arn(bad), None, "{bad}");
        }
        assert_eq!(cos_bucket_arn("ap-chengdu", "125", "b-125"), "qcs::cos:ap-chengdu:uid/125:b-125");
        assert_eq!(cos_object_arn("ap-chengdu", "125", "b-125", "k/x"), "qcs::cos:ap-chengdu:uid/125:b-125/k/x");
    }

    #[test]
    fn bucket_arns() {
        assert_eq!(parse_bucket_arn("arn:aws:s3:::reports"), Some("reports".into()));
        assert_eq!(parse_bucket_arn("arn:aws:s3:::Reports"), None);
        assert_eq!(parse_bucket_arn("reports"), None);
        assert_eq!(bucket_arn("b1"), "arn:aws:s3:::b1");
    }
}
