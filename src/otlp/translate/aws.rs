//! The `aws` block (the AWS call a span made, and for segments where the service runs: EC2,
//! ECS, EKS, Elastic Beanstalk, the SDK), `origin` and `service.version`, from span and
//! resource attributes.

use super::json::{self, Object};
use super::span::{AnyValue, Attributes};
use super::truncated;
use std::borrow::Cow;

/// Appends the `aws` block's value to `out` (members in key order, as a map would hold them):
/// the call's fields from the span, and for a segment those of where the service runs from
/// the resource. Whether there was one (nothing is written when it would be empty).
pub fn write(
    attributes: &Attributes<'_>,
    resource: &Attributes<'_>,
    is_segment: bool,
    out: &mut Vec<u8>,
) -> bool {
    let aws_api = attributes.peek("rpc.system").and_then(AnyValue::as_str) == Some("aws-api");
    let operation = attributes.text_ref(&["aws.operation"]).or_else(|| {
        aws_api
            .then(|| attributes.text_ref(&["rpc.method"]))
            .flatten()
    });
    let region = attributes.text_ref(&["aws.region", "cloud.region"]);
    let request_id = attributes.text_ref(&["aws.request_id", "aws.requestId"]);
    let queue_url = attributes.text_ref(&["aws.queue_url", "aws.sqs.queue_url", "messaging.url"]);
    let mut table_name = attributes
        .text_ref(&["aws.table_name"])
        .filter(|name| !name.is_empty());
    let mut table_names = Vec::new();
    if let Some(tables) = attributes.take("aws.dynamodb.table_names") {
        let names: Vec<String> = match tables {
            AnyValue::Array(_) => tables
                .array()
                .iter()
                .filter_map(AnyValue::to_text)
                .collect(),
            other => other.to_text().into_iter().collect(),
        };
        match <[String; 1]>::try_from(names) {
            Ok([one]) => {
                if table_name.is_none() {
                    table_name = Some(Cow::Owned(one));
                }
            }
            Err(names) if names.len() > 1 => table_names = names,
            Err(_) => {}
        }
    }
    let account = attributes.text_ref(&["aws.account_id"]).or_else(|| {
        is_segment
            .then(|| resource.text_ref(&["cloud.account.id"]))
            .flatten()
    });
    let mut aws = Object::begin(out);
    aws.text(out, "account_id", account.as_deref().map(truncated));
    if is_segment {
        where_it_runs(resource, &mut aws, out);
    }
    aws.text(out, "operation", operation.as_deref().map(truncated));
    aws.text(out, "queue_url", queue_url.as_deref().map(truncated));
    aws.text(out, "region", region.as_deref().map(truncated));
    aws.text(out, "request_id", request_id.as_deref().map(truncated));
    aws.text(out, "table_name", table_name.as_deref().map(truncated));
    if !table_names.is_empty() {
        aws.key(out, "table_names");
        out.push(b'[');
        for (n, name) in table_names.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            json::string(out, name);
        }
        out.push(b']');
    }
    if is_segment {
        xray(resource, &mut aws, out);
    }
    aws.end(out)
}

/// Writes the member `ec2`, `ecs`, `eks` or `elastic_beanstalk` from the resource, members in
/// key order.
fn where_it_runs(resource: &Attributes<'_>, aws: &mut Object, out: &mut Vec<u8>) {
    let platform = resource.peek("cloud.platform").and_then(AnyValue::as_str);
    // Each member's key, and the resource attributes it is read from (the first set).
    type Members = &'static [(&'static str, &'static [&'static str])];
    let (key, members): (&str, Members) = match platform {
        Some("aws_ec2") => (
            "ec2",
            &[
                ("ami_id", &["host.image.id"]),
                ("availability_zone", &["cloud.availability_zone"]),
                ("instance_id", &["host.id"]),
                ("instance_size", &["host.type"]),
            ],
        ),
        Some("aws_ecs") => (
            "ecs",
            &[
                ("availability_zone", &["cloud.availability_zone"]),
                ("cluster_arn", &["aws.ecs.cluster.arn"]),
                ("container", &["container.name", "host.name"]),
                ("container_arn", &["aws.ecs.container.arn"]),
                ("container_id", &["container.id"]),
                ("launch_type", &["aws.ecs.launchtype"]),
                ("task_arn", &["aws.ecs.task.arn"]),
                ("task_family", &["aws.ecs.task.family"]),
            ],
        ),
        Some("aws_eks") => (
            "eks",
            &[
                ("cluster_name", &["k8s.cluster.name"]),
                ("container_id", &["container.id"]),
                ("pod", &["k8s.pod.name", "host.name"]),
            ],
        ),
        Some("aws_elastic_beanstalk") => (
            "elastic_beanstalk",
            &[
                ("deployment_id", &["service.instance.id"]),
                ("environment_name", &["service.namespace"]),
                ("version_label", &["service.version"]),
            ],
        ),
        _ => return,
    };
    let mut block = aws.object(out, key);
    for (key, from) in members {
        let value = resource.text_ref(from);
        block.text(out, key, value.as_deref().map(truncated));
    }
    block.end_in(aws, out);
}

/// Writes the member `xray` (the SDK) from the resource.
fn xray(resource: &Attributes<'_>, aws: &mut Object, out: &mut Vec<u8>) {
    let sdk = resource.text_ref(&["telemetry.sdk.name"]).map(|name| {
        match resource.text_ref(&["telemetry.sdk.language"]) {
            Some(language) => Cow::Owned(format!("{name} for {language}")),
            None => name,
        }
    });
    let version = resource.text_ref(&["telemetry.sdk.version"]);
    let auto = resource.peek("telemetry.auto.version").is_some()
        || resource.peek("telemetry.distro.name").is_some();
    let mut xray = aws.object(out, "xray");
    if auto {
        xray.key(out, "auto_instrumentation");
        out.extend_from_slice(b"true");
    }
    xray.text(out, "sdk", sdk.as_deref().map(truncated));
    xray.text(out, "sdk_version", version.as_deref().map(truncated));
    xray.end_in(aws, out);
}

/// X-Ray's `origin` for a service on AWS (`cloud.provider` `aws` or unset), from
/// `cloud.platform`; `None` elsewhere.
pub fn origin(resource: &Attributes<'_>) -> Option<&'static str> {
    if let Some(provider) = resource.peek("cloud.provider").and_then(AnyValue::as_str)
        && provider != "aws"
    {
        return None;
    }
    Some(match resource.peek("cloud.platform")?.as_str()? {
        "aws_ec2" => "AWS::EC2::Instance",
        "aws_eks" => "AWS::EKS::Container",
        "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
        "aws_app_runner" => "AWS::AppRunner::Service",
        "aws_lambda" => "AWS::Lambda::Function",
        "aws_ecs" => match resource
            .peek("aws.ecs.launchtype")
            .and_then(AnyValue::as_str)
        {
            Some("ec2") => "AWS::ECS::EC2",
            Some("fargate") => "AWS::ECS::Fargate",
            _ => "AWS::ECS::Container",
        },
        _ => return None,
    })
}

/// Appends the `service` block (`{"version": …}` from `service.version`), for segments;
/// whether there was one.
pub fn write_service(resource: &Attributes<'_>, out: &mut Vec<u8>) -> bool {
    let Some(version) = resource.text_ref(&["service.version"]) else {
        return false;
    };
    // An empty version is written, as it always was.
    let mut service = Object::begin(out);
    service.key(out, "version");
    json::string(out, truncated(&version));
    service.end(out)
}
