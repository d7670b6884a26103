//! Span → document cases, checked field by field.

use super::super::protobuf::{I32, I64, VARINT, put_bytes, put_tag, put_varint};
use super::*;
use serde_json::json;

const TRACE: [u8; 16] = [
    0x5f, 0x8a, 0x1b, 0x2c, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
];
const ID: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const PARENT: [u8; 8] = [9, 9, 9, 9, 9, 9, 9, 9];
const START: u64 = 1_700_000_000_123_456_789;
const END: u64 = 1_700_000_001_500_000_000;

fn any(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, number, payload);
    out
}
fn s(text: &str) -> Vec<u8> {
    any(1, text.as_bytes())
}
fn raw_s(bytes: &[u8]) -> Vec<u8> {
    any(1, bytes)
}
fn i(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_tag(&mut out, 3, VARINT);
    put_varint(&mut out, v as u64);
    out
}
fn b(v: bool) -> Vec<u8> {
    let mut out = Vec::new();
    put_tag(&mut out, 2, VARINT);
    put_varint(&mut out, u64::from(v));
    out
}
fn d(v: f64) -> Vec<u8> {
    let mut out = Vec::new();
    put_tag(&mut out, 4, I64);
    out.extend_from_slice(&v.to_bits().to_le_bytes());
    out
}
fn arr(values: &[Vec<u8>]) -> Vec<u8> {
    let mut array = Vec::new();
    for v in values {
        put_bytes(&mut array, 1, v);
    }
    any(5, &array)
}
fn kv(key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, key.as_bytes());
    put_bytes(&mut out, 2, value);
    out
}

/// Attributes to encode: key, `AnyValue` bytes.
type Attrs = Vec<(&'static str, Vec<u8>)>;

/// A span to build.
#[derive(Clone)]
struct SpanSpec {
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Option<[u8; 8]>,
    flags: Option<u32>,
    name: Vec<u8>,
    kind: u64,
    start: u64,
    end: u64,
    attributes: Attrs,
    events: Vec<(&'static str, Attrs)>,
    status: Option<(u64, &'static str)>,
    links: Vec<([u8; 16], [u8; 8])>,
}

fn spec(kind: u64) -> SpanSpec {
    SpanSpec {
        trace: TRACE.to_vec(),
        id: ID.to_vec(),
        parent: None,
        flags: None,
        name: b"GET /orders".to_vec(),
        kind,
        start: START,
        end: END,
        attributes: Vec::new(),
        events: Vec::new(),
        status: None,
        links: Vec::new(),
    }
}

impl SpanSpec {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, 1, &self.trace);
        put_bytes(&mut out, 2, &self.id);
        if let Some(parent) = self.parent {
            put_bytes(&mut out, 4, &parent);
        }
        put_bytes(&mut out, 5, &self.name);
        put_tag(&mut out, 6, VARINT);
        put_varint(&mut out, self.kind);
        put_tag(&mut out, 7, I64);
        out.extend_from_slice(&self.start.to_le_bytes());
        put_tag(&mut out, 8, I64);
        out.extend_from_slice(&self.end.to_le_bytes());
        for (key, value) in &self.attributes {
            put_bytes(&mut out, 9, &kv(key, value));
        }
        for (name, attributes) in &self.events {
            let mut event = Vec::new();
            put_bytes(&mut event, 2, name.as_bytes());
            for (key, value) in attributes {
                put_bytes(&mut event, 3, &kv(key, value));
            }
            put_bytes(&mut out, 11, &event);
        }
        for (trace, id) in &self.links {
            let mut link = Vec::new();
            put_bytes(&mut link, 1, trace);
            put_bytes(&mut link, 2, id);
            put_bytes(&mut link, 4, &kv("kind", &s("batch")));
            put_bytes(&mut out, 13, &link);
        }
        if let Some((code, message)) = self.status {
            let mut status = Vec::new();
            put_bytes(&mut status, 2, message.as_bytes());
            put_tag(&mut status, 3, VARINT);
            put_varint(&mut status, code);
            put_bytes(&mut out, 15, &status);
        }
        if let Some(flags) = self.flags {
            put_tag(&mut out, 16, I32);
            out.extend_from_slice(&flags.to_le_bytes());
        }
        out
    }
}

fn resource_spans(resource: &[(&str, Vec<u8>)], spans: &[Vec<u8>]) -> Vec<u8> {
    let mut res = Vec::new();
    for (key, value) in resource {
        put_bytes(&mut res, 1, &kv(key, value));
    }
    let mut scope = Vec::new();
    for span in spans {
        put_bytes(&mut scope, 2, span);
    }
    let mut out = Vec::new();
    put_bytes(&mut out, 1, &res);
    put_bytes(&mut out, 2, &scope);
    out
}

fn service() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("service.name", s("checkout")),
        ("service.version", s("1.4.2")),
        ("telemetry.sdk.name", s("opentelemetry")),
        ("telemetry.sdk.language", s("python")),
        ("telemetry.sdk.version", s("1.27.0")),
    ]
}

fn translate_all(
    resource: &[(&str, Vec<u8>)],
    spans: &[SpanSpec],
    indexing: &Indexing,
) -> Translated {
    let encoded: Vec<Vec<u8>> = spans.iter().map(SpanSpec::encode).collect();
    let mut out = Translated::default();
    translate(&resource_spans(resource, &encoded), indexing, &mut out);
    for doc in &out.documents {
        assert!(doc.len() <= MAX_DOCUMENT_BYTES, "{} bytes", doc.len());
    }
    out
}

fn one_with(resource: &[(&str, Vec<u8>)], span: SpanSpec, indexing: &Indexing) -> Value {
    let out = translate_all(resource, &[span], indexing);
    assert_eq!(out.refused, 0, "{:?}", out.first_refusal);
    assert_eq!(out.documents.len(), 1);
    serde_json::from_slice(&out.documents[0]).expect("the document is JSON")
}

fn one(span: SpanSpec) -> Value {
    one_with(&service(), span, &Indexing::default())
}

/// Checks `doc` field by field: each pointer has the value, or is absent for `null`.
fn expect(case: &str, doc: &Value, fields: &[(&str, Value)]) {
    for (pointer, want) in fields {
        match (doc.pointer(pointer), want) {
            (None, Value::Null) => {}
            (got, want) => assert_eq!(got, Some(want), "{case}: {pointer} in {doc}"),
        }
    }
}

fn with(mut span: SpanSpec, attributes: &[(&'static str, Vec<u8>)]) -> SpanSpec {
    span.attributes.extend(attributes.iter().cloned());
    span
}

fn child(kind: u64) -> SpanSpec {
    SpanSpec {
        parent: Some(PARENT),
        ..spec(kind)
    }
}

const INTERNAL: u64 = 1;
const SERVER: u64 = 2;
const CLIENT: u64 = 3;
const PRODUCER: u64 = 4;
const CONSUMER: u64 = 5;

#[test]
fn a_server_span_is_a_segment_named_after_its_service() {
    let doc = one_with(
        &[
            service(),
            vec![
                ("cloud.provider", s("aws")),
                ("cloud.platform", s("aws_ec2")),
                ("host.id", s("i-0abc")),
                ("host.type", s("t4g.small")),
                ("cloud.availability_zone", s("eu-west-1a")),
                ("cloud.account.id", s("123456789012")),
            ],
        ]
        .concat(),
        with(spec(SERVER), &[("peer.service", s("caller"))]),
        &Indexing::default(),
    );
    expect(
        "server",
        &doc,
        &[
            ("/name", json!("checkout")),
            ("/id", json!("0102030405060708")),
            ("/trace_id", json!("1-5f8a1b2c-aabbccddeeff001122334455")),
            ("/start_time", json!(1_700_000_000.123_456)),
            ("/end_time", json!(1_700_000_001.5)),
            ("/type", Value::Null),
            ("/parent_id", Value::Null),
            ("/namespace", Value::Null),
            ("/in_progress", Value::Null),
            ("/origin", json!("AWS::EC2::Instance")),
            ("/service/version", json!("1.4.2")),
            ("/aws/ec2/instance_id", json!("i-0abc")),
            ("/aws/ec2/instance_size", json!("t4g.small")),
            ("/aws/ec2/availability_zone", json!("eu-west-1a")),
            ("/aws/account_id", json!("123456789012")),
            ("/aws/xray/sdk", json!("opentelemetry for python")),
            ("/aws/xray/sdk_version", json!("1.27.0")),
            ("/metadata/default/peer.service", json!("caller")),
            (
                "/metadata/default/otel.resource.service.name",
                json!("checkout"),
            ),
            ("/error", Value::Null),
            ("/fault", Value::Null),
        ],
    );
}

#[test]
fn the_time_keeps_microseconds_and_an_unended_span_is_in_progress() {
    let doc = one(SpanSpec {
        end: 0,
        ..spec(SERVER)
    });
    expect(
        "in progress",
        &doc,
        &[("/in_progress", json!(true)), ("/end_time", Value::Null)],
    );
    let text = serde_json::to_string(&doc).unwrap();
    assert!(text.contains("\"start_time\":1700000000.123456"), "{text}");
    assert_eq!(
        seconds(1_700_000_000_000_001_000).to_string(),
        "1700000000.000001"
    );
}

#[test]
fn trace_ids_keep_their_first_part_even_when_it_is_not_an_epoch() {
    let mut w3c = spec(SERVER);
    w3c.trace = vec![0xff; 16];
    expect(
        "w3c",
        &one(w3c),
        &[("/trace_id", json!("1-ffffffff-ffffffffffffffffffffffff"))],
    );
}

#[test]
fn spans_without_valid_ids_or_times_are_refused_and_counted() {
    let mut zero = spec(SERVER);
    zero.trace = vec![0; 16];
    let mut short = spec(SERVER);
    short.trace = vec![1; 8];
    let mut no_id = spec(SERVER);
    no_id.id = vec![1, 2, 3];
    let mut no_time = spec(SERVER);
    no_time.start = 0;
    no_time.end = 0;
    let out = translate_all(
        &service(),
        &[zero, short, no_id, no_time, spec(SERVER)],
        &Indexing::default(),
    );
    assert_eq!(out.refused, 4);
    assert_eq!(out.documents.len(), 1);
    assert!(out.first_refusal.unwrap().contains("trace id"));
}

#[test]
fn every_span_kind_becomes_a_segment_or_a_subsegment() {
    // (case, kind, has a parent, flags, expected type, expected namespace)
    type Case = (
        &'static str,
        u64,
        bool,
        Option<u32>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        ("server root", SERVER, false, None, None, None),
        ("server child", SERVER, true, None, None, None),
        ("client root", CLIENT, false, None, None, None),
        (
            "client child",
            CLIENT,
            true,
            None,
            Some("subsegment"),
            Some("remote"),
        ),
        (
            "internal child",
            INTERNAL,
            true,
            None,
            Some("subsegment"),
            None,
        ),
        ("unspecified child", 0, true, None, Some("subsegment"), None),
        ("odd kind child", 99, true, None, Some("subsegment"), None),
        (
            "producer child",
            PRODUCER,
            true,
            None,
            Some("subsegment"),
            Some("remote"),
        ),
        (
            "consumer, remote parent",
            CONSUMER,
            true,
            Some(0x300),
            None,
            None,
        ),
        (
            "consumer, local parent",
            CONSUMER,
            true,
            Some(0x100),
            Some("subsegment"),
            None,
        ),
        ("consumer, parent unknown", CONSUMER, true, None, None, None),
        ("consumer root", CONSUMER, false, None, None, None),
    ];
    for &(case, kind, parent, flags, kind_of_doc, namespace) in cases {
        let span = SpanSpec {
            parent: parent.then_some(PARENT),
            flags,
            ..spec(kind)
        };
        let doc = one(span);
        expect(
            case,
            &doc,
            &[
                ("/type", kind_of_doc.map_or(Value::Null, |t| json!(t))),
                ("/namespace", namespace.map_or(Value::Null, |n| json!(n))),
                (
                    "/parent_id",
                    if parent {
                        json!("0909090909090909")
                    } else {
                        Value::Null
                    },
                ),
                ("/trace_id", json!("1-5f8a1b2c-aabbccddeeff001122334455")),
            ],
        );
        // Segments carry the service; subsegments do not repeat it.
        let segment = kind_of_doc.is_none();
        assert_eq!(doc.pointer("/service/version").is_some(), segment, "{case}");
    }
}

#[test]
fn a_consumer_whose_parent_is_in_the_same_batch_is_a_subsegment() {
    let parent = SpanSpec {
        id: PARENT.to_vec(),
        ..spec(SERVER)
    };
    let out = translate_all(&service(), &[parent, child(CONSUMER)], &Indexing::default());
    let doc: Value = serde_json::from_slice(&out.documents[1]).unwrap();
    expect("local consumer", &doc, &[("/type", json!("subsegment"))]);
}

#[test]
fn names_follow_the_reference_order_and_are_cleaned() {
    let cases: Vec<(&str, SpanSpec, &str)> = vec![
        (
            "peer.service first",
            with(
                child(CLIENT),
                &[
                    ("peer.service", s("billing")),
                    ("http.host", s("h.example")),
                ],
            ),
            "billing",
        ),
        (
            "aws.service",
            with(child(CLIENT), &[("aws.service", s("S3"))]),
            "S3",
        ),
        (
            "aws-api rpc.service",
            with(
                child(CLIENT),
                &[("rpc.system", s("aws-api")), ("rpc.service", s("DynamoDB"))],
            ),
            "DynamoDB",
        ),
        (
            "db.name@host",
            with(
                child(CLIENT),
                &[
                    ("db.name", s("orders")),
                    (
                        "db.connection_string",
                        s("postgresql://app@db.internal:5432/orders"),
                    ),
                ],
            ),
            "orders@db.internal",
        ),
        (
            "db.namespace@server.address",
            with(
                child(CLIENT),
                &[("db.namespace", s("orders")), ("server.address", s("db2"))],
            ),
            "orders@db2",
        ),
        (
            "rpc.service",
            with(child(CLIENT), &[("rpc.service", s("helloworld.Greeter"))]),
            "helloworld.Greeter",
        ),
        (
            "http.host",
            with(child(CLIENT), &[("http.host", s("api.example.com"))]),
            "api.example.com",
        ),
        (
            "server.address",
            with(child(CLIENT), &[("server.address", s("api2.example.com"))]),
            "api2.example.com",
        ),
        (
            "net.peer.name",
            with(child(CLIENT), &[("net.peer.name", s("old.example.com"))]),
            "old.example.com",
        ),
        ("span name", child(INTERNAL), "GET /orders"),
        (
            "cleaned",
            SpanSpec {
                name: b"GET /users/{id}?x=<1>".to_vec(),
                ..child(INTERNAL)
            },
            "GET /users/idx=1",
        ),
        (
            "nothing left",
            SpanSpec {
                name: b"{}<>".to_vec(),
                ..child(INTERNAL)
            },
            "span",
        ),
    ];
    for (case, span, want) in cases {
        expect(case, &one(span), &[("/name", json!(want))]);
    }
    let long = SpanSpec {
        name: "é".repeat(300).into_bytes(),
        ..child(INTERNAL)
    };
    let doc = one(long);
    assert_eq!(doc["name"].as_str().unwrap().chars().count(), 200);
    // A segment without service.name falls back to the span name.
    expect(
        "no service",
        &one_with(&[], spec(SERVER), &Indexing::default()),
        &[("/name", json!("GET /orders"))],
    );
}

#[test]
fn http_from_the_old_conventions() {
    let doc = one(with(
        child(CLIENT),
        &[
            ("http.method", s("POST")),
            ("http.url", s("https://api.example.com/pay?id=3")),
            ("http.status_code", i(201)),
            ("http.user_agent", s("curl/8")),
            ("http.response_content_length", i(512)),
            ("net.peer.name", s("api.example.com")),
        ],
    ));
    expect(
        "old client",
        &doc,
        &[
            ("/name", json!("api.example.com")),
            ("/http/request/method", json!("POST")),
            (
                "/http/request/url",
                json!("https://api.example.com/pay?id=3"),
            ),
            ("/http/request/user_agent", json!("curl/8")),
            ("/http/response/status", json!(201)),
            ("/http/response/content_length", json!(512)),
            ("/metadata/default/http.method", Value::Null),
            ("/metadata/default/net.peer.name", json!("api.example.com")),
        ],
    );
    let server = one(with(
        spec(SERVER),
        &[
            ("http.method", s("GET")),
            ("http.scheme", s("https")),
            ("http.host", s("shop.example:8443")),
            ("http.target", s("/cart?id=1")),
            ("http.client_ip", s("203.0.113.9")),
            ("http.status_code", s("200")),
        ],
    ));
    expect(
        "old server",
        &server,
        &[
            (
                "/http/request/url",
                json!("https://shop.example:8443/cart?id=1"),
            ),
            ("/http/request/client_ip", json!("203.0.113.9")),
            ("/http/response/status", json!(200)),
        ],
    );
}

#[test]
fn http_from_the_stable_conventions() {
    let doc = one(with(
        spec(SERVER),
        &[
            ("http.request.method", s("GET")),
            ("url.scheme", s("http")),
            ("server.address", s("shop.example")),
            ("server.port", i(8080)),
            ("url.path", s("/items")),
            ("url.query", s("page=2")),
            ("client.address", s("198.51.100.7")),
            ("user_agent.original", s("Mozilla/5.0")),
            ("http.response.status_code", i(404)),
            ("http.response.body.size", i(17)),
        ],
    ));
    expect(
        "stable server",
        &doc,
        &[
            ("/http/request/method", json!("GET")),
            (
                "/http/request/url",
                json!("http://shop.example:8080/items?page=2"),
            ),
            ("/http/request/client_ip", json!("198.51.100.7")),
            ("/http/request/user_agent", json!("Mozilla/5.0")),
            ("/http/response/status", json!(404)),
            ("/http/response/content_length", json!(17)),
            ("/error", json!(true)),
            ("/throttle", Value::Null),
            ("/fault", Value::Null),
        ],
    );
    let client = one(with(
        child(CLIENT),
        &[
            ("http.request.method", s("PUT")),
            ("url.full", s("https://s3.example/b/k")),
            ("server.address", s("s3.example")),
        ],
    ));
    expect(
        "stable client",
        &client,
        &[
            ("/name", json!("s3.example")),
            ("/http/request/url", json!("https://s3.example/b/k")),
            ("/http/request/client_ip", Value::Null),
        ],
    );
    // Without a method, server.address is not an HTTP host and no URL is made up.
    let db = one(with(child(CLIENT), &[("server.address", s("cache"))]));
    expect("no http", &db, &[("/http", Value::Null)]);
}

#[test]
fn error_throttle_and_fault() {
    let cases: Vec<(&str, SpanSpec, [Value; 3])> = vec![
        (
            "429",
            with(child(CLIENT), &[("http.response.status_code", i(429))]),
            [json!(true), json!(true), Value::Null],
        ),
        (
            "400 with status error",
            SpanSpec {
                status: Some((2, "bad request")),
                ..with(child(CLIENT), &[("http.status_code", i(400))])
            },
            [json!(true), Value::Null, Value::Null],
        ),
        (
            "503",
            with(child(CLIENT), &[("http.status_code", i(503))]),
            [Value::Null, Value::Null, json!(true)],
        ),
        (
            "status error",
            SpanSpec {
                status: Some((2, "boom")),
                ..child(INTERNAL)
            },
            [Value::Null, Value::Null, json!(true)],
        ),
        (
            "status ok",
            SpanSpec {
                status: Some((1, "")),
                ..child(INTERNAL)
            },
            [Value::Null, Value::Null, Value::Null],
        ),
    ];
    for (case, span, [error, throttle, fault]) in cases {
        expect(
            case,
            &one(span),
            &[
                ("/error", error),
                ("/throttle", throttle),
                ("/fault", fault),
            ],
        );
    }
    let doc = one(SpanSpec {
        status: Some((2, "boom")),
        ..child(INTERNAL)
    });
    expect(
        "status message",
        &doc,
        &[("/cause/exceptions/0/message", json!("boom"))],
    );
}

#[test]
fn aws_calls_fill_the_aws_block() {
    let doc = one(with(
        child(CLIENT),
        &[
            ("rpc.system", s("aws-api")),
            ("rpc.service", s("DynamoDB")),
            ("rpc.method", s("GetItem")),
            ("aws.request_id", s("REQ123")),
            ("aws.region", s("eu-west-1")),
            ("aws.dynamodb.table_names", arr(&[s("orders")])),
        ],
    ));
    expect(
        "dynamodb",
        &doc,
        &[
            ("/name", json!("DynamoDB")),
            ("/namespace", json!("aws")),
            ("/aws/operation", json!("GetItem")),
            ("/aws/request_id", json!("REQ123")),
            ("/aws/region", json!("eu-west-1")),
            ("/aws/table_name", json!("orders")),
            ("/aws/table_names", Value::Null),
            ("/metadata/default/rpc.method", Value::Null),
        ],
    );
    let doc = one(with(
        child(PRODUCER),
        &[
            ("aws.service", s("SQS")),
            ("aws.operation", s("SendMessage")),
            (
                "aws.queue_url",
                s("https://sqs.eu-west-1.amazonaws.com/1/q"),
            ),
            ("aws.account_id", s("111122223333")),
            ("aws.dynamodb.table_names", arr(&[s("a"), s("b")])),
        ],
    ));
    expect(
        "sqs",
        &doc,
        &[
            ("/name", json!("SQS")),
            ("/namespace", json!("aws")),
            ("/aws/operation", json!("SendMessage")),
            (
                "/aws/queue_url",
                json!("https://sqs.eu-west-1.amazonaws.com/1/q"),
            ),
            ("/aws/account_id", json!("111122223333")),
            ("/aws/table_names", json!(["a", "b"])),
            ("/aws/ec2", Value::Null),
        ],
    );
}

#[test]
fn resource_blocks_for_ecs_eks_and_beanstalk() {
    let ecs = one_with(
        &[
            ("service.name", s("svc")),
            ("cloud.platform", s("aws_ecs")),
            ("aws.ecs.launchtype", s("fargate")),
            ("aws.ecs.task.arn", s("arn:task")),
            ("aws.ecs.cluster.arn", s("arn:cluster")),
            ("container.id", s("c0ffee")),
        ],
        spec(SERVER),
        &Indexing::default(),
    );
    expect(
        "ecs",
        &ecs,
        &[
            ("/origin", json!("AWS::ECS::Fargate")),
            ("/aws/ecs/task_arn", json!("arn:task")),
            ("/aws/ecs/cluster_arn", json!("arn:cluster")),
            ("/aws/ecs/container_id", json!("c0ffee")),
        ],
    );
    let eks = one_with(
        &[
            ("cloud.provider", s("aws")),
            ("cloud.platform", s("aws_eks")),
            ("k8s.cluster.name", s("prod")),
            ("k8s.pod.name", s("web-1")),
        ],
        spec(SERVER),
        &Indexing::default(),
    );
    expect(
        "eks",
        &eks,
        &[
            ("/origin", json!("AWS::EKS::Container")),
            ("/aws/eks/cluster_name", json!("prod")),
            ("/aws/eks/pod", json!("web-1")),
        ],
    );
    let gcp = one_with(
        &[
            ("cloud.provider", s("gcp")),
            ("cloud.platform", s("gcp_compute_engine")),
        ],
        spec(SERVER),
        &Indexing::default(),
    );
    expect("not aws", &gcp, &[("/origin", Value::Null)]);
    let beanstalk = one_with(
        &[
            ("cloud.platform", s("aws_elastic_beanstalk")),
            ("service.namespace", s("env-1")),
            ("service.version", s("v7")),
        ],
        spec(SERVER),
        &Indexing::default(),
    );
    expect(
        "beanstalk",
        &beanstalk,
        &[
            ("/origin", json!("AWS::ElasticBeanstalk::Environment")),
            ("/aws/elastic_beanstalk/environment_name", json!("env-1")),
            ("/aws/elastic_beanstalk/version_label", json!("v7")),
        ],
    );
}

#[test]
fn sql_for_sql_databases_only() {
    let doc = one(with(
        child(CLIENT),
        &[
            ("db.system", s("postgresql")),
            ("db.name", s("orders")),
            ("db.user", s("app")),
            ("db.statement", s("SELECT * FROM orders WHERE id = $1")),
            ("server.address", s("db.local")),
            ("server.port", i(5432)),
        ],
    ));
    expect(
        "postgresql",
        &doc,
        &[
            ("/name", json!("orders@db.local")),
            ("/sql/database_type", json!("postgresql")),
            ("/sql/url", json!("db.local:5432/orders")),
            ("/sql/user", json!("app")),
            (
                "/sql/sanitized_query",
                json!("SELECT * FROM orders WHERE id = $1"),
            ),
        ],
    );
    let redis = one(with(child(CLIENT), &[("db.system", s("redis"))]));
    expect("redis", &redis, &[("/sql", Value::Null)]);
}

const PYTHON_TRACE: &str = r#"Traceback (most recent call last):
  File "/app/db.py", line 12, in connect
    raise ConnectionError("refused")
ConnectionError: refused

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/usr/lib/python3.12/site-packages/flask/app.py", line 880, in full_dispatch_request
    rv = self.dispatch_request()
         ^^^^^^^^^^^^^^^^^^^^^^^
  File "/app/views.py", line 41, in checkout
    order = load_order(order_id)
  File "/app/orders.py", line 7, in load_order
    raise ValueError(f"no order {order_id}")
ValueError: no order 42
"#;

const JAVA_TRACE: &str = "java.lang.IllegalStateException: cart is empty
\tat com.shop.Cart.checkout(Cart.java:88)
\tat com.shop.CartController.post(CartController.java:31)
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)
Caused by: java.sql.SQLException: timeout
\tat org.postgresql.Driver.connect(Driver.java:290)
\t... 12 more
";

const NODE_TRACE: &str = "TypeError: Cannot read properties of undefined (reading 'id')
    at getUser (/srv/app/users.js:14:22)
    at async Promise.all (index 0)
    at async handler (file:///srv/app/index.mjs:30:5)
    at /srv/app/router.js:7:3
    at node:internal/process/task_queues:95:5
";

fn exception_event(kind: &str, message: &str, trace: &str) -> SpanSpec {
    let mut span = child(INTERNAL);
    span.status = Some((2, ""));
    span.events.push((
        "exception",
        vec![
            ("exception.type", s(kind)),
            ("exception.message", s(message)),
            ("exception.stacktrace", s(trace)),
        ],
    ));
    span
}

#[test]
fn python_stack_traces() {
    let doc = one(exception_event("ValueError", "no order 42", PYTHON_TRACE));
    expect(
        "python",
        &doc,
        &[
            ("/fault", json!(true)),
            ("/cause/exceptions/0/type", json!("ValueError")),
            ("/cause/exceptions/0/message", json!("no order 42")),
            ("/cause/exceptions/0/stack/0/path", json!("/app/orders.py")),
            ("/cause/exceptions/0/stack/0/line", json!(7)),
            ("/cause/exceptions/0/stack/0/label", json!("load_order")),
            (
                "/cause/exceptions/0/stack/2/label",
                json!("full_dispatch_request"),
            ),
            ("/cause/exceptions/0/stack/3", Value::Null),
            ("/cause/exceptions/1/type", json!("ConnectionError")),
            ("/cause/exceptions/1/message", json!("refused")),
            ("/cause/exceptions/1/stack/0/path", json!("/app/db.py")),
            ("/cause/exceptions/1/stack/0/line", json!(12)),
        ],
    );
    assert_eq!(
        doc.pointer("/cause/exceptions/0/cause"),
        doc.pointer("/cause/exceptions/1/id")
    );
    assert_eq!(
        doc.pointer("/cause/exceptions/0/id")
            .unwrap()
            .as_str()
            .unwrap()
            .len(),
        16
    );
}

#[test]
fn java_stack_traces() {
    let doc = one(exception_event(
        "java.lang.IllegalStateException",
        "cart is empty",
        JAVA_TRACE,
    ));
    expect(
        "java",
        &doc,
        &[
            (
                "/cause/exceptions/0/type",
                json!("java.lang.IllegalStateException"),
            ),
            (
                "/cause/exceptions/0/stack/0/label",
                json!("com.shop.Cart.checkout"),
            ),
            ("/cause/exceptions/0/stack/0/path", json!("Cart.java")),
            ("/cause/exceptions/0/stack/0/line", json!(88)),
            (
                "/cause/exceptions/0/stack/2/label",
                json!("jdk.internal.reflect.NativeMethodAccessorImpl.invoke0"),
            ),
            ("/cause/exceptions/0/stack/2/path", json!("Native Method")),
            ("/cause/exceptions/0/stack/2/line", Value::Null),
            ("/cause/exceptions/1/type", json!("java.sql.SQLException")),
            ("/cause/exceptions/1/message", json!("timeout")),
            ("/cause/exceptions/1/stack/0/line", json!(290)),
            ("/cause/exceptions/1/truncated", json!(12)),
        ],
    );
}

#[test]
fn node_stack_traces() {
    let doc = one(exception_event(
        "TypeError",
        "Cannot read properties of undefined (reading 'id')",
        NODE_TRACE,
    ));
    expect(
        "node",
        &doc,
        &[
            ("/cause/exceptions/0/type", json!("TypeError")),
            ("/cause/exceptions/0/stack/0/label", json!("getUser")),
            (
                "/cause/exceptions/0/stack/0/path",
                json!("/srv/app/users.js"),
            ),
            ("/cause/exceptions/0/stack/0/line", json!(14)),
            ("/cause/exceptions/0/stack/1/label", json!("Promise.all")),
            ("/cause/exceptions/0/stack/1/path", json!("index 0")),
            ("/cause/exceptions/0/stack/2/label", json!("handler")),
            (
                "/cause/exceptions/0/stack/2/path",
                json!("file:///srv/app/index.mjs"),
            ),
            ("/cause/exceptions/0/stack/2/line", json!(30)),
            (
                "/cause/exceptions/0/stack/3/path",
                json!("/srv/app/router.js"),
            ),
            ("/cause/exceptions/0/stack/3/label", Value::Null),
            (
                "/cause/exceptions/0/stack/4/path",
                json!("node:internal/process/task_queues"),
            ),
            ("/cause/exceptions/1", Value::Null),
        ],
    );
}

#[test]
fn exceptions_without_a_trace_and_other_events() {
    let mut span = child(INTERNAL);
    span.events.push(("log", vec![("message", s("hello"))]));
    span.events.push((
        "exception",
        vec![
            ("exception.type", s("KeyError")),
            ("exception.stacktrace", s("garbage")),
        ],
    ));
    let doc = one(span);
    expect(
        "plain",
        &doc,
        &[
            ("/cause/exceptions/0/type", json!("KeyError")),
            ("/cause/exceptions/0/stack", Value::Null),
            ("/cause/exceptions/1", Value::Null),
            ("/fault", Value::Null),
        ],
    );
    let many = exceptions::parse(&format!(
        "E: x\n{}",
        "\tat a.B.c(B.java:1)\n".repeat(exceptions::MAX_FRAMES + 5)
    ));
    assert_eq!(many[0].frames.len(), exceptions::MAX_FRAMES);
    assert_eq!(many[0].truncated, 5);
}

#[test]
fn annotations_by_cfg_by_attribute_and_all() {
    let attributes = [
        ("user.tier", s("gold")),
        ("cart.items", i(3)),
        ("cart.total", d(12.5)),
        ("cart.gift", b(true)),
        ("cart.tags", arr(&[s("a"), s("b")])),
        (
            "aws.xray.annotations",
            arr(&[s("cart.gift"), s("cart.tags")]),
        ),
        ("http.method", s("GET")),
    ];
    let indexing = Indexing {
        indexed: vec!["user.tier".into(), "otel.resource.service.version".into()],
        all: false,
    };
    let doc = one_with(&service(), with(spec(SERVER), &attributes), &indexing);
    expect(
        "named",
        &doc,
        &[
            ("/annotations/user_tier", json!("gold")),
            ("/annotations/cart_gift", json!(true)),
            ("/annotations/otel_resource_service_version", json!("1.4.2")),
            ("/annotations/cart_items", Value::Null),
            // An array is no annotation: it stays metadata, with its type.
            ("/metadata/default/cart.tags", json!(["a", "b"])),
            ("/metadata/default/cart.items", json!(3)),
            ("/metadata/default/cart.total", json!(12.5)),
            ("/metadata/default/aws.xray.annotations", Value::Null),
            ("/metadata/default/http.method", Value::Null),
        ],
    );
    let all = Indexing {
        indexed: Vec::new(),
        all: true,
    };
    let doc = one_with(&service(), with(child(INTERNAL), &attributes), &all);
    expect(
        "all",
        &doc,
        &[
            ("/annotations/user_tier", json!("gold")),
            ("/annotations/cart_items", json!(3)),
            ("/annotations/cart_total", json!(12.5)),
            ("/annotations/cart_gift", json!(true)),
            ("/annotations/http_method", Value::Null),
            ("/metadata/default/cart.tags", json!(["a", "b"])),
            // Resource attributes go with segments only.
            ("/metadata/default/otel.resource.service.name", Value::Null),
        ],
    );
    assert_eq!(annotations::clean_key("a.b-c d/é"), "a_b_c_d__");
}

#[test]
fn enduser_links_and_odd_values() {
    let mut span = with(
        spec(SERVER),
        &[
            ("enduser.id", s("u-17")),
            ("blob", any(7, b"\x00\xff")),
            ("nan", d(f64::NAN)),
            ("empty", Vec::new()),
            (
                "nested",
                any(6, &any(1, &kv("inner", &arr(&[i(-1), b(false)])))),
            ),
        ],
    );
    span.links.push((TRACE, PARENT));
    let doc = one(span);
    expect(
        "odd",
        &doc,
        &[
            ("/user", json!("u-17")),
            ("/metadata/default/enduser.id", Value::Null),
            ("/metadata/default/blob", json!("AP8=")),
            ("/metadata/default/nan", json!("NaN")),
            ("/metadata/default/empty", Value::Null),
            ("/metadata/default/nested", json!({"inner": [-1, false]})),
            (
                "/links/0/trace_id",
                json!("1-5f8a1b2c-aabbccddeeff001122334455"),
            ),
            ("/links/0/id", json!("0909090909090909")),
            ("/links/0/attributes/kind", json!("batch")),
        ],
    );
}

#[test]
fn non_utf8_text_is_replaced_not_refused() {
    let span = SpanSpec {
        name: b"caf\xe9".to_vec(),
        attributes: vec![
            ("bad", raw_s(b"\xff\xfeok")),
            ("http.method", raw_s(b"G\xc0T")),
        ],
        ..child(INTERNAL)
    };
    let doc = one(span);
    expect(
        "utf-8",
        &doc,
        &[
            ("/name", json!("caf")),
            ("/metadata/default/bad", json!("\u{fffd}\u{fffd}ok")),
            ("/http/request/method", json!("G\u{fffd}T")),
        ],
    );
}

#[test]
fn huge_values_are_cut_to_fit_and_counted() {
    let big = "x".repeat(50_000);
    let span = with(
        child(CLIENT),
        &[
            ("small", s("kept")),
            ("big.one", s(&big)),
            ("big.two", s(&big[..40_000])),
            ("big.three", s(&big[..20_000])),
            ("http.method", s("GET")),
            ("http.url", s(&format!("https://h/{big}"))),
        ],
    );
    let out = translate_all(&service(), &[span], &Indexing::default());
    assert_eq!(out.cut, 2);
    let doc: Value = serde_json::from_slice(&out.documents[0]).unwrap();
    expect(
        "huge",
        &doc,
        &[
            ("/metadata/default/small", json!("kept")),
            ("/metadata/default/big.one", Value::Null),
            ("/metadata/default/big.two", Value::Null),
            ("/metadata/default/big.three", json!(big[..20_000])),
        ],
    );
    assert_eq!(
        doc["http"]["request"]["url"].as_str().unwrap().len(),
        MAX_FIELD_CHARS
    );
    // Control characters take six bytes each in JSON: still under the limit.
    let controls = "\u{1}".repeat(MAX_FIELD_CHARS);
    let keys: Vec<&'static str> = vec![
        "aws.operation",
        "aws.region",
        "aws.request_id",
        "aws.queue_url",
        "aws.table_name",
        "aws.account_id",
        "http.method",
        "http.url",
        "http.user_agent",
        "http.client_ip",
        "db.statement",
        "db.user",
        "db.connection_string",
        "enduser.id",
    ];
    let mut span = child(CLIENT);
    span.attributes = keys.iter().map(|k| (*k, s(&controls))).collect();
    span.attributes.push(("db.system", s("mysql")));
    let out = translate_all(&service(), &[span], &Indexing::default());
    assert_eq!(out.documents.len(), 1);
    assert!(out.cut > 0);
}

#[test]
fn a_whole_request_and_garbage() {
    let encoded = resource_spans(&service(), &[spec(SERVER).encode(), child(CLIENT).encode()]);
    let mut request_bytes = Vec::new();
    put_bytes(&mut request_bytes, 1, &encoded);
    put_bytes(&mut request_bytes, 1, &encoded);
    let mut out = Translated::default();
    request(&request_bytes, &Indexing::default(), &mut out);
    assert_eq!(out.documents.len(), 4);
    for cut in 0..request_bytes.len() {
        let mut out = Translated::default();
        request(&request_bytes[..cut], &Indexing::default(), &mut out);
        for doc in &out.documents {
            serde_json::from_slice::<Value>(doc).expect("every document is JSON");
        }
    }
}

#[test]
fn mutated_requests_give_valid_documents_or_none() {
    // A small deterministic stand-in for the fuzz target (tests/fuzz, otlp_translate) that
    // runs under plain `cargo test`: bytes of a rich request flipped, cut and repeated.
    let mut rich = child(CLIENT);
    rich.attributes = vec![
        ("http.method", s("GET")),
        ("aws.dynamodb.table_names", arr(&[s("a"), i(3)])),
        ("nested", any(6, &any(1, &kv("k", &arr(&[d(1.5)]))))),
    ];
    rich.events
        .push(("exception", vec![("exception.stacktrace", s(JAVA_TRACE))]));
    let encoded = resource_spans(&service(), &[rich.encode(), spec(SERVER).encode()]);
    let mut request_bytes = Vec::new();
    put_bytes(&mut request_bytes, 1, &encoded);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = request_bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        let mut out = Translated::default();
        request(
            &bytes,
            &Indexing {
                indexed: Vec::new(),
                all: true,
            },
            &mut out,
        );
        for doc in &out.documents {
            assert!(doc.len() <= MAX_DOCUMENT_BYTES);
            let value: Value = serde_json::from_slice(doc).expect("every document is JSON");
            assert_eq!(value["id"].as_str().map(str::len), Some(16));
        }
    }
}

/// Translation speed for spans of about 1 KB, 512 to a `ResourceSpans`:
/// `cargo test --release --lib translate::tests::speed -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run it in a release build"]
fn speed() {
    let mut spans = Vec::new();
    for n in 0..512u32 {
        let mut span = with(
            if n % 4 == 0 {
                spec(SERVER)
            } else {
                child(CLIENT)
            },
            &[
                ("http.request.method", s("POST")),
                (
                    "url.full",
                    s("https://api.example.com/v1/orders/12345/items?expand=all"),
                ),
                ("server.address", s("api.example.com")),
                ("server.port", i(443)),
                ("http.response.status_code", i(200)),
                ("user_agent.original", s("python-requests/2.32.3")),
                ("network.protocol.version", s("1.1")),
                ("order.id", s("ord-0000000000012345")),
                ("order.items", i(7)),
                ("order.total", d(123.45)),
                ("customer.tier", s("gold")),
                ("feature.flags", arr(&[s("new-checkout"), s("fast-pay")])),
                ("payload", s(&"x".repeat(300))),
            ],
        );
        span.id = (u64::from(n) + 1).to_be_bytes().to_vec();
        spans.push(span.encode());
    }
    let resource = resource_spans(
        &[
            service(),
            vec![
                ("host.name", s("ip-10-0-0-12")),
                ("cloud.provider", s("aws")),
                ("cloud.platform", s("aws_ec2")),
                ("cloud.region", s("eu-west-1")),
            ],
        ]
        .concat(),
        &spans,
    );
    let per_span = resource.len() / spans.len();
    let indexing = Indexing {
        indexed: vec!["customer.tier".into()],
        all: false,
    };
    // CPU time of this thread: the machine is shared, wall time would count the others.
    let cpu = || {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given and nothing else.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
    };
    let (started, cpu_started) = (std::time::Instant::now(), cpu());
    let mut translated = 0usize;
    let mut bytes = 0usize;
    while started.elapsed() < std::time::Duration::from_secs(2) {
        let mut out = Translated::default();
        translate(&resource, &indexing, &mut out);
        translated += out.documents.len();
        bytes += out.documents.iter().map(Vec::len).sum::<usize>();
    }
    let seconds = cpu() - cpu_started;
    println!(
        "{per_span} bytes per span (protobuf), {} bytes per document: {:.2} µs of CPU per span, {:.0} spans/s per core",
        bytes / translated,
        seconds * 1e6 / translated as f64,
        translated as f64 / seconds
    );
}

#[test]
fn exceptions_are_capped_and_causes_point_only_at_written_ones() {
    let mut span = child(INTERNAL);
    for _ in 0..20 {
        span.events
            .push(("exception", vec![("exception.stacktrace", s(JAVA_TRACE))]));
    }
    let doc = one(span);
    let exceptions = doc["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), exceptions::MAX_EXCEPTIONS);
    let ids: Vec<&str> = exceptions
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for exception in exceptions {
        if let Some(cause) = exception["cause"].as_str() {
            assert!(ids.contains(&cause), "{cause} is not written");
        }
    }
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "exception ids repeat");
}

#[test]
fn metadata_written_directly_keeps_types_and_a_resource_key_replaces_a_span_attribute() {
    let span = || {
        with(
            spec(SERVER),
            &[
                ("note", s("tab\there \"quoted\"")),
                ("count", i(-7)),
                ("ratio", d(0.25)),
                ("flag", b(true)),
                ("tags", arr(&[s("a"), i(2)])),
                ("otel.resource.service.name", s("from the span")),
            ],
        )
    };
    let doc = one(span());
    expect(
        "metadata",
        &doc,
        &[
            ("/metadata/default/note", json!("tab\there \"quoted\"")),
            ("/metadata/default/count", json!(-7)),
            ("/metadata/default/ratio", json!(0.25)),
            ("/metadata/default/flag", json!(true)),
            ("/metadata/default/tags", json!(["a", 2])),
            (
                "/metadata/default/otel.resource.service.name",
                json!("checkout"),
            ),
        ],
    );
    // Written once in the document's bytes, not twice (a parser would hide a duplicate).
    let out = translate_all(&service(), &[span()], &Indexing::default());
    let text = String::from_utf8(out.documents[0].clone()).unwrap();
    assert_eq!(
        text.matches("otel.resource.service.name").count(),
        1,
        "{text}"
    );
}

#[test]
fn java_frames_left_out_add_up_without_overflow() {
    // `... N more` counts from the trace text itself: two huge counts (or one and frames past
    // MAX_FRAMES) must saturate, not overflow (a panic in debug builds).
    let trace = format!(
        "E: x\n\tat a.B.c(B.java:1)\n\t... {max} more\nCaused by: F: y\n\t... 3 more\n\t... {max} more\n",
        max = u64::MAX
    );
    let doc = one(exception_event("E", "x", &trace));
    expect(
        "java more",
        &doc,
        &[
            ("/cause/exceptions/0/stack/0/label", json!("a.B.c")),
            ("/cause/exceptions/0/truncated", json!(u64::MAX)),
            ("/cause/exceptions/1/type", json!("F")),
            ("/cause/exceptions/1/truncated", json!(u64::MAX)),
        ],
    );
    let many = exceptions::parse(&format!(
        "E: x\n\t... {} more\n{}",
        u64::MAX,
        "\tat a.B.c(B.java:1)\n".repeat(exceptions::MAX_FRAMES + 1)
    ));
    assert_eq!(many[0].frames.len(), exceptions::MAX_FRAMES);
    assert_eq!(many[0].truncated, u64::MAX);
}

#[test]
fn a_parent_id_that_is_not_8_bytes_is_no_parent() {
    // Fuzz finding: a CLIENT span whose parent span id was 7 or 9 bytes became a subsegment
    // without parent_id, which X-Ray refuses. A parent id X-Ray cannot name is no parent.
    for parent in [&[7u8; 7][..], &[7u8; 9][..], &[0u8; 8][..]] {
        let mut span = spec(CLIENT).encode();
        put_bytes(&mut span, 4, parent);
        let mut out = Translated::default();
        translate(
            &resource_spans(&service(), &[span]),
            &Indexing::default(),
            &mut out,
        );
        assert_eq!((out.documents.len(), out.refused), (1, 0), "{parent:?}");
        let doc: Value = serde_json::from_slice(&out.documents[0]).expect("JSON");
        expect(
            "parent id of another length",
            &doc,
            &[
                ("/name", json!("checkout")),
                ("/type", Value::Null),
                ("/parent_id", Value::Null),
                ("/namespace", Value::Null),
                ("/service/version", json!("1.4.2")),
            ],
        );
    }
}

#[test]
fn annotations_stay_within_x_ray_limits() {
    // At most 50 annotations (the rest stay metadata with their types), string values cut to
    // 1,000 characters (not bytes), keys to 500; a key that is not UTF-8 is cleaned like any.
    let long_value = "é".repeat(annotations::MAX_VALUE_CHARS + 1);
    let long_key = "k".repeat(annotations::MAX_KEY_CHARS + 20);
    let mut encoded = child(INTERNAL).encode();
    let mut not_utf8 = Vec::new();
    put_bytes(&mut not_utf8, 1, b"caf\xe9");
    put_bytes(&mut not_utf8, 2, &s("latte"));
    put_bytes(&mut encoded, 9, &not_utf8);
    put_bytes(&mut encoded, 9, &kv("long.value", &s(&long_value)));
    put_bytes(&mut encoded, 9, &kv(&long_key, &b(true)));
    for n in 0..60 {
        put_bytes(&mut encoded, 9, &kv(&format!("n{n:02}"), &i(n)));
    }
    let all = Indexing {
        indexed: Vec::new(),
        all: true,
    };
    let mut out = Translated::default();
    translate(&resource_spans(&service(), &[encoded]), &all, &mut out);
    let doc: Value = serde_json::from_slice(&out.documents[0]).expect("JSON");
    let annotations = doc["annotations"].as_object().expect("annotations");
    assert_eq!(annotations.len(), annotations::MAX_ANNOTATIONS);
    let cut_key = "k".repeat(annotations::MAX_KEY_CHARS);
    expect(
        "limits",
        &doc,
        &[
            ("/annotations/caf_", json!("latte")),
            (
                "/annotations/long_value",
                json!("é".repeat(annotations::MAX_VALUE_CHARS)),
            ),
            (&format!("/annotations/{cut_key}"), json!(true)),
            ("/annotations/n00", json!(0)),
            ("/annotations/n46", json!(46)),
            ("/annotations/n47", Value::Null),
            ("/metadata/default/n47", json!(47)),
            ("/metadata/default/n59", json!(59)),
            ("/metadata/default/caf\u{fffd}", Value::Null),
            ("/metadata/default/long.value", Value::Null),
            ("/metadata/default/n00", Value::Null),
        ],
    );
}

#[test]
fn an_attribute_with_an_empty_key_is_no_annotation() {
    // Fuzz finding: with IndexAllAttributes, an attribute whose key was empty became the
    // annotation "", a key X-Ray cannot index. It stays metadata.
    let all = Indexing {
        indexed: Vec::new(),
        all: true,
    };
    let doc = one_with(
        &service(),
        with(spec(SERVER), &[("", s("/cart")), ("cart.id", s("c-1"))]),
        &all,
    );
    expect(
        "empty key",
        &doc,
        &[
            ("/annotations/cart_id", json!("c-1")),
            ("/metadata/default/", json!("/cart")),
        ],
    );
    assert!(
        !doc["annotations"]
            .as_object()
            .expect("annotations")
            .contains_key("")
    );
}

#[test]
fn times_written_directly_read_as_the_float_would_print() {
    let mut ns: u64 = 1;
    let mut cases = vec![
        0,
        999,
        1_000_000_000,
        1_700_000_000_000_000_000,
        1_700_000_000_100_000_000,
    ];
    cases.extend([
        1_700_000_000_123_456_789,
        4_294_967_295_999_999_999,
        4_294_967_296_000_001_000,
    ]);
    cases.push(u64::MAX);
    // A spread of values across the whole range, every digit pattern of the micros.
    for _ in 0..20_000 {
        ns = ns
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        cases.push(ns % 5_000_000_000_000_000_000);
        cases.push(1_700_000_000_000_000_000 + ns % 1_000_000_000);
    }
    for ns in cases {
        let mut written = Vec::new();
        super::write_seconds(ns, &mut written);
        assert_eq!(
            String::from_utf8_lossy(&written),
            seconds(ns).to_string(),
            "{ns} ns"
        );
    }
}

#[test]
fn blocks_written_directly_are_the_bytes_a_map_gives() {
    // Members in key order, empty objects left out, the rarer members (auto instrumentation,
    // several tables, an empty version) as the serde_json maps used to write them.
    let mut resource = service();
    resource.retain(|(key, _)| *key != "service.version");
    resource.extend([
        ("service.version", s("")),
        ("cloud.provider", s("aws")),
        ("cloud.platform", s("aws_eks")),
        ("k8s.cluster.name", s("prod")),
        ("host.name", s("pod-1")),
        ("telemetry.auto.version", s("2.0")),
    ]);
    let span = with(
        spec(SERVER),
        &[
            ("http.request.method", s("GET")),
            ("http.response.status_code", i(503)),
            ("aws.dynamodb.table_names", arr(&[s("a"), s("")])),
            ("db.system", s("postgresql")),
            ("db.statement", s("SELECT \"x\"\n")),
        ],
    );
    let out = translate_all(&resource, &[span], &Indexing::default());
    let doc = String::from_utf8(out.documents[0].clone()).expect("UTF-8");
    for part in [
        r#""aws":{"eks":{"cluster_name":"prod","pod":"pod-1"},"table_names":["a",""],"xray":{"auto_instrumentation":true,"sdk":"opentelemetry for python","sdk_version":"1.27.0"}}"#,
        r#""fault":true,"http":{"request":{"method":"GET"},"response":{"status":503}},"id":"0102030405060708","name":"checkout","origin":"AWS::EKS::Container","service":{"version":""},"sql":{"database_type":"postgresql","sanitized_query":"SELECT \"x\"\n"},"start_time":"#,
    ] {
        assert!(doc.contains(part), "{part} in {doc}");
    }
}

#[test]
fn annotations_written_directly_keep_map_order_and_a_later_twin_key_wins() {
    let span = with(
        child(CLIENT),
        &[
            ("z", s("last")),
            ("a.b", i(1)),
            ("a_b", i(2)),
            ("B", b(true)),
            ("ratio", d(0.25)),
            ("list", arr(&[s("x")])),
        ],
    );
    let all = Indexing {
        indexed: Vec::new(),
        all: true,
    };
    let out = translate_all(&service(), &[span], &all);
    let doc = String::from_utf8(out.documents[0].clone()).expect("UTF-8");
    let part = r#""annotations":{"B":true,"a_b":2,"ratio":0.25,"z":"last"},"end_time":"#;
    assert!(doc.contains(part), "{part} in {doc}");
    assert!(
        doc.contains(r#""metadata":{"default":{"list":["x"]}}"#),
        "{doc}"
    );
}
