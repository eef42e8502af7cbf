//! Bucket and object ARNs as S3 Batch Operations uses them: `arn:aws:s3:::bucket` and
//! `arn:aws:s3:::bucket/key`.

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
    fn bucket_arns() {
        assert_eq!(parse_bucket_arn("arn:aws:s3:::reports"), Some("reports".into()));
        assert_eq!(parse_bucket_arn("arn:aws:s3:::Reports"), None);
        assert_eq!(parse_bucket_arn("reports"), None);
        assert_eq!(bucket_arn("b1"), "arn:aws:s3:::b1");
    }
}
