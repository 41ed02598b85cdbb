// The S3-compatible server of objstore's oss:// tests (tests/s3/README).
//
// s3rver (a real S3 REST server on the file system) on 127.0.0.1 and an
// ephemeral port, with two things added in front of it:
// - every request must carry an AWS Signature Version 4 that aws4 (an
//   independent signer) computes the same for the configured key pair;
//   s3rver itself does not check V4 signatures;
// - a write of a key (PUT, completing an upload, DELETE) runs alone, and a
//   read's body is read before a write of its key starts: S3 makes each PUT and each
//   completed multipart upload visible atomically, while s3rver rewrites
//   object files in place (a read racing an overwrite came back torn, or
//   shorter than its Content-Length and hung);
// - fault injection for the tests: answer 503 SlowDown to the first N
//   requests, exit in the middle of a multipart upload, or answer a
//   CompleteMultipartUpload with 200 and an error document, or complete
//   an upload and close the connection instead of answering.
//
//   node server.js --directory DIR [--buckets a,b] [--access-key K]
//     [--secret-key S] [--port P] [--fail-first N] [--die-after-parts N]
//     [--complete-errors N] [--drop-complete-replies N]
//
// Prints "port <P>" on stdout once listening; runs until killed.
'use strict';
const S3rver = require('s3rver');
const aws4 = require('aws4');

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const directory = arg('directory');
if (!directory) {
  console.error('server.js: --directory is required');
  process.exit(2);
}
const buckets = arg('buckets', '').split(',').filter(x => x);
const keys = { [arg('access-key', 'objstore-test')]: arg('secret-key', 'objstore-test-secret') };
// s3rver looks the key id up in its own registry (and checks only V2
// signatures itself).
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');
for (const [id, secret] of Object.entries(keys))
  DUMMY_ACCOUNT.createKeyPair(id, secret);
let failFirst = Number(arg('fail-first', '0'));
let dieAfterParts = Number(arg('die-after-parts', '0'));
let completeErrors = Number(arg('complete-errors', '0'));
let dropCompleteReplies = Number(arg('drop-complete-replies', '0'));

function s3error(ctx, status, code, message) {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code +
    '</Code><Message>' + message + '</Message></Error>';
}

/// Checks the request's SigV4 signature with aws4; null when it is right.
function checkSignature(req) {
  const auth = req.headers['authorization'] || '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m)
    return ['AccessDenied', 'a SigV4 Authorization header is required'];
  const [, keyId, , region, signedHeaders, signature] = m;
  const secret = keys[keyId];
  if (secret === undefined)
    return ['InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  const headers = {};
  for (const name of signedHeaders.split(';')) {
    if (req.headers[name] === undefined)
      return ['AccessDenied', 'signed header ' + name + ' is missing'];
    headers[name] = req.headers[name];
  }
  const opts = { method: req.method, host: req.headers['host'], path: req.url,
                 service: 's3', region, headers };
  const signer = new aws4.RequestSigner(opts, { accessKeyId: keyId, secretAccessKey: secret });
  signer.prepareRequest();
  // Exactly the headers the client signed (aws4 alone would leave out
  // `range`, which SigV4 clients such as botocore sign).
  signer.filteredHeaders = Object.entries(headers).sort((a, b) => a[0] < b[0] ? -1 : 1);
  const expected = signer.signature();
  if (expected !== signature)
    return ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'];
  return null;
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(arg('port', '0')),
  directory,
  silent: true,
  vhostBuckets: false,
  configureBuckets: buckets.map(name => ({ name })),
});
/// A reader-writer turn per bucket/key: reads (GET, HEAD) of a key share
/// it, a write (PUT, POST, DELETE) has it alone; parts of a multipart
/// upload go to files of their own and take no turn.
const turns = new Map();
function acquire(name, write) {
  let t = turns.get(name);
  if (!t) {
    t = { readers: 0, writer: false, queue: [] };
    turns.set(name, t);
  }
  return new Promise(resolve => {
    t.queue.push({ write, resolve });
    grant(name);
  });
}
function grant(name) {
  const t = turns.get(name);
  while (t.queue.length > 0 && !t.writer) {
    const next = t.queue[0];
    if (next.write && t.readers > 0)
      break;
    t.queue.shift();
    if (next.write)
      t.writer = true;
    else
      ++t.readers;
    next.resolve();
  }
  if (t.queue.length === 0 && !t.writer && t.readers === 0)
    turns.delete(name);
}
function release(name, write) {
  const t = turns.get(name);
  if (write)
    t.writer = false;
  else
    --t.readers;
  grant(name);
}
async function inTurn(name, write, fn) {
  await acquire(name, write);
  try {
    return await fn();
  } finally {
    release(name, write);
  }
}

async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream)
    chunks.push(chunk);
  return Buffer.concat(chunks);
}

server.middleware.unshift(async (ctx, next) => {
  if (ctx.method === 'PUT' && ctx.query.partNumber !== undefined)
    return next();
  const name = decodeURIComponent(ctx.path);
  const write = ctx.method !== 'GET' && ctx.method !== 'HEAD';
  return inTurn(name, write, async () => {
    await next();
    if (ctx.body && typeof ctx.body.pipe === 'function')
      ctx.body = await readAll(ctx.body);
  });
});

server.middleware.unshift(async (ctx, next) => {
  const wrong = checkSignature(ctx.req);
  if (wrong)
    return s3error(ctx, 403, wrong[0], wrong[1]);
  if (failFirst > 0) {
    --failFirst;
    return s3error(ctx, 503, 'SlowDown', 'Please reduce your request rate.');
  }
  const q = ctx.query;
  if (ctx.method === 'PUT' && q.partNumber !== undefined && dieAfterParts > 0) {
    if (--dieAfterParts === 0) {
      // Store this part, then die before answering: a crash mid-upload.
      await next();
      process.kill(process.pid, 'SIGKILL');
    }
  }
  if (ctx.method === 'POST' && q.uploadId !== undefined && dropCompleteReplies > 0) {
    --dropCompleteReplies;
    await next(); // the object is stored...
    ctx.req.socket.destroy(); // ...and the reply lost
    return;
  }
  if (ctx.method === 'POST' && q.uploadId !== undefined && completeErrors > 0) {
    --completeErrors;
    // S3 may answer 200 and put the failure in the body.
    ctx.status = 200;
    ctx.type = 'application/xml';
    ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n\n<Error><Code>InternalError</Code>' +
      '<Message>We encountered an internal error. Please try again.</Message></Error>';
    return;
  }
  return next();
});

server.run().then(({ port }) => {
  process.stdout.write('port ' + port + '\n');
});
