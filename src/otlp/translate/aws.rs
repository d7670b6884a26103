//! The `aws` block (the AWS call a span made, and for segments where the service runs: EC2,
//! ECS, EKS, Elastic Beanstalk, the SDK), `origin` and `service.version`, from span and
//! resource attributes.

use super::span::{AnyValue, Attributes};
use super::truncate;
use serde_json::{Map, Value};

fn put(map: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        map.insert(key.into(), Value::String(truncate(value)));
    }
}

/// The `aws` block: the call's fields from the span, and for a segment those of where the
/// service runs from the resource. `None` when empty.
pub fn block(
    attributes: &Attributes<'_>,
    resource: &Attributes<'_>,
    is_segment: bool,
) -> Option<Value> {
    let mut aws = Map::new();
    let aws_api = attributes.peek("rpc.system").and_then(AnyValue::as_str) == Some("aws-api");
    let operation = attributes
        .text(&["aws.operation"])
        .or_else(|| aws_api.then(|| attributes.text(&["rpc.method"])).flatten());
    put(&mut aws, "operation", operation);
    put(
        &mut aws,
        "region",
        attributes.text(&["aws.region", "cloud.region"]),
    );
    put(
        &mut aws,
        "request_id",
        attributes.text(&["aws.request_id", "aws.requestId"]),
    );
    put(
        &mut aws,
        "queue_url",
        attributes.text(&["aws.queue_url", "aws.sqs.queue_url", "messaging.url"]),
    );
    put(&mut aws, "table_name", attributes.text(&["aws.table_name"]));
    if let Some(tables) = attributes.take("aws.dynamodb.table_names") {
        let names: Vec<String> = match tables {
            AnyValue::Array(_) => tables
                .array()
                .iter()
                .filter_map(AnyValue::to_text)
                .collect(),
            other => other.to_text().into_iter().collect(),
        };
        match names.as_slice() {
            [one] if !aws.contains_key("table_name") => {
                put(&mut aws, "table_name", Some(one.clone()))
            }
            [] | [_] => {}
            many => {
                aws.insert(
                    "table_names".into(),
                    Value::Array(many.iter().cloned().map(Value::String).collect()),
                );
            }
        }
    }
    let account = attributes.text(&["aws.account_id"]).or_else(|| {
        is_segment
            .then(|| resource.text(&["cloud.account.id"]))
            .flatten()
    });
    put(&mut aws, "account_id", account);
    if is_segment {
        where_it_runs(resource, &mut aws);
    }
    (!aws.is_empty()).then_some(Value::Object(aws))
}

/// Adds `ec2`, `ecs`, `eks`, `elastic_beanstalk` and `xray` from the resource.
fn where_it_runs(resource: &Attributes<'_>, aws: &mut Map<String, Value>) {
    let platform = resource.peek("cloud.platform").and_then(AnyValue::as_str);
    let zone = || resource.text(&["cloud.availability_zone"]);
    let mut block = Map::new();
    match platform {
        Some("aws_ec2") => {
            put(&mut block, "instance_id", resource.text(&["host.id"]));
            put(&mut block, "availability_zone", zone());
            put(&mut block, "instance_size", resource.text(&["host.type"]));
            put(&mut block, "ami_id", resource.text(&["host.image.id"]));
            add(aws, "ec2", block);
        }
        Some("aws_ecs") => {
            put(
                &mut block,
                "container",
                resource.text(&["container.name", "host.name"]),
            );
            put(&mut block, "container_id", resource.text(&["container.id"]));
            put(&mut block, "task_arn", resource.text(&["aws.ecs.task.arn"]));
            put(
                &mut block,
                "task_family",
                resource.text(&["aws.ecs.task.family"]),
            );
            put(
                &mut block,
                "cluster_arn",
                resource.text(&["aws.ecs.cluster.arn"]),
            );
            put(
                &mut block,
                "container_arn",
                resource.text(&["aws.ecs.container.arn"]),
            );
            put(
                &mut block,
                "launch_type",
                resource.text(&["aws.ecs.launchtype"]),
            );
            put(&mut block, "availability_zone", zone());
            add(aws, "ecs", block);
        }
        Some("aws_eks") => {
            put(
                &mut block,
                "cluster_name",
                resource.text(&["k8s.cluster.name"]),
            );
            put(
                &mut block,
                "pod",
                resource.text(&["k8s.pod.name", "host.name"]),
            );
            put(&mut block, "container_id", resource.text(&["container.id"]));
            add(aws, "eks", block);
        }
        Some("aws_elastic_beanstalk") => {
            put(
                &mut block,
                "environment_name",
                resource.text(&["service.namespace"]),
            );
            put(
                &mut block,
                "deployment_id",
                resource.text(&["service.instance.id"]),
            );
            put(
                &mut block,
                "version_label",
                resource.text(&["service.version"]),
            );
            add(aws, "elastic_beanstalk", block);
        }
        _ => {}
    }
    let mut xray = Map::new();
    let sdk = resource.text(&["telemetry.sdk.name"]).map(|name| {
        match resource.text(&["telemetry.sdk.language"]) {
            Some(language) => format!("{name} for {language}"),
            None => name,
        }
    });
    put(&mut xray, "sdk", sdk);
    put(
        &mut xray,
        "sdk_version",
        resource.text(&["telemetry.sdk.version"]),
    );
    if resource.peek("telemetry.auto.version").is_some()
        || resource.peek("telemetry.distro.name").is_some()
    {
        xray.insert("auto_instrumentation".into(), Value::Bool(true));
    }
    add(aws, "xray", xray);
}

fn add(aws: &mut Map<String, Value>, key: &str, block: Map<String, Value>) {
    if !block.is_empty() {
        aws.insert(key.into(), Value::Object(block));
    }
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

/// The `service` block (`{"version": …}` from `service.version`), for segments.
pub fn service(resource: &Attributes<'_>) -> Option<Value> {
    let version = resource.text(&["service.version"])?;
    let mut service = Map::new();
    service.insert("version".into(), Value::String(truncate(version)));
    Some(Value::Object(service))
}
