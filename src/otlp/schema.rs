//! The OTLP trace messages the relay reads, as tables: field number, JSON name and kind.
//! One table drives the protobuf check, the protobuf → JSON writer and the JSON → protobuf
//! reader, so the three cannot disagree (opentelemetry-proto `trace/v1/trace.proto`,
//! `common/v1/common.proto`, `resource/v1/resource.proto`). Fields not listed are unknown:
//! skipped in protobuf, ignored in JSON, as the specification asks.

/// How a field is encoded.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `string`: length-delimited UTF-8.
    Str,
    /// `bytes` holding a trace or span id: hex in JSON (OTLP's rule).
    HexId,
    /// Other `bytes`: base64 in JSON.
    Base64,
    /// `uint32`, `int32` or an enum: varint; a JSON number.
    Int32,
    /// `int64`: varint; a JSON string (a number is accepted).
    Int64,
    /// `fixed32`: 4 bytes; a JSON number.
    Fixed32,
    /// `fixed64`: 8 bytes; a JSON string (a number is accepted).
    Fixed64,
    /// `double`: 8 bytes; a JSON number (or `"NaN"`, `"Infinity"`, `"-Infinity"`).
    Double,
    /// `bool`: varint.
    Bool,
    /// A nested message.
    Message(&'static Message),
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    /// The protobuf field number.
    pub number: u32,
    /// The lowerCamelCase JSON name.
    pub name: &'static str,
    /// Its encoding.
    pub kind: Kind,
    /// `repeated` (every repeated field here holds messages).
    pub repeated: bool,
}

/// A message: its name (for errors) and its known fields.
#[derive(Debug)]
pub struct Message {
    /// The protobuf message name.
    pub name: &'static str,
    /// The fields, in the order JSON output lists them.
    pub fields: &'static [Field],
}

impl Message {
    /// The field numbered `number`, if known.
    pub fn field(&self, number: u32) -> Option<&'static Field> {
        // The tables list fields in number order, but for `Span.flags` (16) moved up after
        // `parentSpanId` (4) for JSON: a field is at `number - 1` or one place further, looked
        // at first since the request check asks for every field of every span.
        let at = (number as usize).wrapping_sub(1);
        [at, at.wrapping_add(1)]
            .into_iter()
            .filter_map(|i| self.fields.get(i))
            .find(|f| f.number == number)
            .or_else(|| self.fields.iter().find(|f| f.number == number))
    }
}

const fn one(number: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: false,
    }
}

const fn many(number: u32, name: &'static str, message: &'static Message) -> Field {
    Field {
        number,
        name,
        kind: Kind::Message(message),
        repeated: true,
    }
}

/// `ExportTraceServiceRequest`.
pub static REQUEST: Message = Message {
    name: "ExportTraceServiceRequest",
    fields: &[many(1, "resourceSpans", &RESOURCE_SPANS)],
};

/// `ResourceSpans`.
pub static RESOURCE_SPANS: Message = Message {
    name: "ResourceSpans",
    fields: &[
        one(1, "resource", Kind::Message(&RESOURCE)),
        many(2, "scopeSpans", &SCOPE_SPANS),
        one(3, "schemaUrl", Kind::Str),
    ],
};

/// `Resource`.
pub static RESOURCE: Message = Message {
    name: "Resource",
    fields: &[
        many(1, "attributes", &KEY_VALUE),
        one(2, "droppedAttributesCount", Kind::Int32),
    ],
};

/// `ScopeSpans`.
pub static SCOPE_SPANS: Message = Message {
    name: "ScopeSpans",
    fields: &[
        one(1, "scope", Kind::Message(&SCOPE)),
        many(2, "spans", &SPAN),
        one(3, "schemaUrl", Kind::Str),
    ],
};

/// `InstrumentationScope`.
pub static SCOPE: Message = Message {
    name: "InstrumentationScope",
    fields: &[
        one(1, "name", Kind::Str),
        one(2, "version", Kind::Str),
        many(3, "attributes", &KEY_VALUE),
        one(4, "droppedAttributesCount", Kind::Int32),
    ],
};

/// `Span`.
pub static SPAN: Message = Message {
    name: "Span",
    fields: &[
        one(1, "traceId", Kind::HexId),
        one(2, "spanId", Kind::HexId),
        one(3, "traceState", Kind::Str),
        one(4, "parentSpanId", Kind::HexId),
        one(16, "flags", Kind::Fixed32),
        one(5, "name", Kind::Str),
        one(6, "kind", Kind::Int32),
        one(7, "startTimeUnixNano", Kind::Fixed64),
        one(8, "endTimeUnixNano", Kind::Fixed64),
        many(9, "attributes", &KEY_VALUE),
        one(10, "droppedAttributesCount", Kind::Int32),
        many(11, "events", &EVENT),
        one(12, "droppedEventsCount", Kind::Int32),
        many(13, "links", &LINK),
        one(14, "droppedLinksCount", Kind::Int32),
        one(15, "status", Kind::Message(&STATUS)),
    ],
};

/// `Span.Event`.
pub static EVENT: Message = Message {
    name: "Span.Event",
    fields: &[
        one(1, "timeUnixNano", Kind::Fixed64),
        one(2, "name", Kind::Str),
        many(3, "attributes", &KEY_VALUE),
        one(4, "droppedAttributesCount", Kind::Int32),
    ],
};

/// `Span.Link`.
pub static LINK: Message = Message {
    name: "Span.Link",
    fields: &[
        one(1, "traceId", Kind::HexId),
        one(2, "spanId", Kind::HexId),
        one(3, "traceState", Kind::Str),
        many(4, "attributes", &KEY_VALUE),
        one(5, "droppedAttributesCount", Kind::Int32),
        one(6, "flags", Kind::Fixed32),
    ],
};

/// `Status`.
pub static STATUS: Message = Message {
    name: "Status",
    fields: &[one(2, "message", Kind::Str), one(3, "code", Kind::Int32)],
};

/// `KeyValue`.
pub static KEY_VALUE: Message = Message {
    name: "KeyValue",
    fields: &[
        one(1, "key", Kind::Str),
        one(2, "value", Kind::Message(&ANY_VALUE)),
    ],
};

/// `AnyValue` (a oneof: one of its fields is set).
pub static ANY_VALUE: Message = Message {
    name: "AnyValue",
    fields: &[
        one(1, "stringValue", Kind::Str),
        one(2, "boolValue", Kind::Bool),
        one(3, "intValue", Kind::Int64),
        one(4, "doubleValue", Kind::Double),
        one(5, "arrayValue", Kind::Message(&ARRAY_VALUE)),
        one(6, "kvlistValue", Kind::Message(&KEY_VALUE_LIST)),
        one(7, "bytesValue", Kind::Base64),
    ],
};

/// `ArrayValue`.
pub static ARRAY_VALUE: Message = Message {
    name: "ArrayValue",
    fields: &[many(1, "values", &ANY_VALUE)],
};

/// `KeyValueList`.
pub static KEY_VALUE_LIST: Message = Message {
    name: "KeyValueList",
    fields: &[many(1, "values", &KEY_VALUE)],
};

/// `google.rpc.Status` (its `details` are not read).
pub static RPC_STATUS: Message = Message {
    name: "Status",
    fields: &[one(1, "code", Kind::Int32), one(2, "message", Kind::Str)],
};
