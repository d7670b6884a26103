// Records two traces with the real OpenTelemetry SDK for Node.js and sends them to an OTLP/HTTP
// endpoint (the relay with --otlp-destination segments), for tests/e2e/test_otlp_segments.py:
//   trace 1: a SERVER span answering 500, its CLIENT child answered 429, and its INTERNAL child
//            that records a thrown StockError (with Node's stack trace) and ends in ERROR;
//   trace 2: a SERVER span answering 200.
// HTTP attributes use the stable semantic conventions (http.request.method, url.full, ...).
//
// Usage: node otlp_segments.js URL json|proto
// json uses @opentelemetry/exporter-trace-otlp-http, proto @opentelemetry/exporter-trace-otlp-proto.
// Prints every span as the SDK recorded and exported it, one JSON object per line (times in
// nanoseconds since the epoch, as decimal strings); exits 0 only if every export succeeded.
'use strict';

const api = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [url, protocol] = process.argv.slice(2);
if (!url || !['json', 'proto'].includes(protocol)) {
  console.error('usage: node otlp_segments.js URL json|proto');
  process.exit(2);
}

const { OTLPTraceExporter } = require(
  protocol === 'json' ? '@opentelemetry/exporter-trace-otlp-http' : '@opentelemetry/exporter-trace-otlp-proto');
const exporter = new OTLPTraceExporter({ url });
const exported = [];
let failures = 0;
const originalExport = exporter.export.bind(exporter);
exporter.export = (spans, done) => originalExport(spans, (result) => {
  if (result.code === 0) {
    exported.push(...spans);
  } else {
    failures += 1;
    console.error(`export failed: ${result.error}`);
  }
  done(result);
});

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({
    'service.name': `checkout-node-${protocol}`,
    'service.version': '3.4.0',
    'deployment.environment.name': 'e2e',
  }),
  spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 100 })],
});
const tracer = provider.getTracer('xray-relay-e2e', '1.0.0');

class StockError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StockError';
  }
}

function reserveStock(item) {
  throw new StockError(`no stock for item ${item}`);
}

const server = tracer.startSpan('GET /orders/:id', {
  kind: api.SpanKind.SERVER,
  attributes: {
    'http.request.method': 'GET',
    'url.scheme': 'http',
    'server.address': 'shop.local',
    'server.port': 8080,
    'url.path': '/orders/7',
    'url.query': 'expand=1',
    'user_agent.original': 'e2e-agent/1.0',
    'http.route': '/orders/:id',
    'http.response.status_code': 500,
    'customer.tier': 'gold',
    'aws.xray.annotations': ['customer.tier'],
    'order.id': 'o-7',
    'order.total': 12.5,
    'order.gift': true,
    'cart.items': 3,
    'cart.skus': ['a-1', 'b-2'],
  },
});
const inServer = api.trace.setSpan(api.context.active(), server);
const client = tracer.startSpan('POST', {
  kind: api.SpanKind.CLIENT,
  attributes: {
    'http.request.method': 'POST',
    'url.full': 'https://pay.example/charge?order=o-7',
    'server.address': 'pay.example',
    'http.response.status_code': 429,
  },
}, inServer);
client.end();
const internal = tracer.startSpan('reserve stock (item #7)', {
  kind: api.SpanKind.INTERNAL,
  attributes: { 'stock.item': 7 },
}, inServer);
try {
  reserveStock(7);
} catch (error) {
  internal.recordException(error);
  internal.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message });
}
internal.end();
server.end();

const health = tracer.startSpan('GET /health', {
  kind: api.SpanKind.SERVER,
  attributes: { 'http.request.method': 'GET', 'url.full': 'http://shop.local/health', 'http.response.status_code': 200 },
});
health.end();

const nanos = ([seconds, nanoseconds]) => (BigInt(seconds) * 1000000000n + BigInt(nanoseconds)).toString();

provider.forceFlush()
  .then(() => provider.shutdown())
  .then(() => {
    for (const span of exported) {
      const context = span.spanContext();
      process.stdout.write(JSON.stringify({
        traceId: context.traceId,
        spanId: context.spanId,
        parentSpanId: span.parentSpanContext ? span.parentSpanContext.spanId : null,
        name: span.name,
        kind: span.kind,
        startNs: nanos(span.startTime),
        endNs: nanos(span.endTime),
        attributes: span.attributes,
        status: span.status,
        events: span.events.map((event) => ({ name: event.name, attributes: event.attributes })),
        resource: span.resource.attributes,
      }) + '\n');
    }
    process.exit(failures === 0 && exported.length === 4 ? 0 : 1);
  })
  .catch((error) => {
    console.error(`flush failed: ${error}`);
    process.exit(1);
  });
