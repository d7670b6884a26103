// Sends spans to an OTLP/HTTP endpoint (the relay) with the real OpenTelemetry SDK for Node.js.
//
// Usage: node otlp.js URL COUNT TAG json|proto
// json uses @opentelemetry/exporter-trace-otlp-http, proto @opentelemetry/exporter-trace-otlp-proto.
// Every span ended is printed on stdout as {"traceId", "spanId", "name"}, one per line; the
// exit status is 0 only if the exporter reported success for every batch.
'use strict';

const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [url, countArg, tag, protocol] = process.argv.slice(2);
const count = Number(countArg);
if (!url || !Number.isInteger(count) || count < 1 || !tag || !['json', 'proto'].includes(protocol)) {
  console.error('usage: node otlp.js URL COUNT TAG json|proto');
  process.exit(2);
}

const { OTLPTraceExporter } = require(
  protocol === 'json' ? '@opentelemetry/exporter-trace-otlp-http' : '@opentelemetry/exporter-trace-otlp-proto');
const exporter = new OTLPTraceExporter({ url });
let failures = 0;
const originalExport = exporter.export.bind(exporter);
exporter.export = (spans, done) => originalExport(spans, (result) => {
  if (result.code !== 0) {
    failures += 1;
    console.error(`export failed: ${result.error}`);
  }
  done(result);
});

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ 'service.name': `node-otlp-${tag}` }),
  spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 64, scheduledDelayMillis: 100 })],
});
const tracer = provider.getTracer('xray-relay-e2e', '1.0.0');

for (let i = 0; i < count; i++) {
  const span = tracer.startSpan(`node-${tag}-${i}`, {
    attributes: { index: i, tag, even: i % 2 === 0, words: ['zwölf', 'naïve', '✓'], ratio: i / 3 },
  });
  span.addEvent('checkpoint', { step: 1 });
  span.end();
  const context = span.spanContext();
  process.stdout.write(JSON.stringify({ traceId: context.traceId, spanId: context.spanId, name: `node-${tag}-${i}` }) + '\n');
}

provider.forceFlush()
  .then(() => provider.shutdown())
  .then(() => process.exit(failures === 0 ? 0 : 1))
  .catch((error) => {
    console.error(`flush failed: ${error}`);
    process.exit(1);
  });
