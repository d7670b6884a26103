// Sends segments through the relay with the real AWS X-Ray SDK for Node.js.
//
// Usage: node send.js HOST:PORT COUNT TAG
// Each segment has two subsegments, annotations and metadata. Every document
// the SDK hands to its UDP emitter is printed on stdout, one JSON per line,
// so the test can compare it with what X-Ray stores.
'use strict';

const AWSXRay = require('aws-xray-sdk-core');
const SegmentEmitter = require('aws-xray-sdk-core/dist/lib/segment_emitter');

const [address, countArg, tag] = process.argv.slice(2);
const count = Number(countArg);
if (!address || !Number.isInteger(count) || count < 1 || !tag) {
  console.error('usage: node send.js HOST:PORT COUNT TAG');
  process.exit(2);
}

AWSXRay.enableManualMode();
AWSXRay.setDaemonAddress(address);
// Short-lived sockets that are closed after sending keep the process alive
// until every datagram is out (the default socket is unref'd).
SegmentEmitter.disableReusableSocket();

const originalSend = SegmentEmitter.send.bind(SegmentEmitter);
SegmentEmitter.send = function send(segment) {
  process.stdout.write(segment.format() + '\n');
  originalSend(segment);
};

for (let i = 0; i < count; i++) {
  const segment = new AWSXRay.Segment(`node-e2e-${tag}`);
  segment.addAnnotation('tag', tag);
  segment.addAnnotation('index', i);
  segment.addAnnotation('even', i % 2 === 0);
  segment.addMetadata('request', { index: i, words: ['zwölf', 'naïve', '✓'] }, 'e2e');

  const db = segment.addNewSubsegment('query');
  db.addAnnotation('table', 'orders');
  db.addMetadata('sql', `SELECT * FROM orders WHERE id = ${i}`);
  db.close();

  const call = segment.addNewSubsegment('downstream');
  call.addAnnotation('attempt', 1);
  call.close(new Error(`downstream failed for ${i}`));

  segment.close();
}
