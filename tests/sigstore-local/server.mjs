#!/usr/bin/env node
// A local Sigstore for tests: Fulcio (CA + CT log) and Rekor (transparency log) from
// @sigstore/mock, served over plain HTTP on 127.0.0.1 only.
//
//   node server.mjs STATE_DIR [PORT] [--clock=ISO8601] [--cert-lifetime=MINUTES] [--quiet]
//
// PORT 0 (the default) picks a free port. When listening, one JSON line is printed on stdout:
//   {"url":"http://127.0.0.1:PORT","port":PORT,"state":"/abs/STATE_DIR"}
// and nothing else is ever written to stdout (request logs go to stderr unless --quiet).
//
// Key material is generated on the first start and saved under STATE_DIR/keys; later starts
// reuse it, so STATE_DIR/trusted_root.json (and the PEM files next to it) stay valid across
// restarts. See README.md for the endpoints, the files and the cosign commands.

import 'reflect-metadata';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import canonicalize from 'canonicalize';
import mock from '@sigstore/mock';

const { initializeCA, initializeCTLog, initializeTLog, initializeTSA, fulcioHandler } = mock;

const HOST = '127.0.0.1';
const CA_NAME = 'CN=sigstore,O=sigstore.mock'; // the issuer name the mock CA signs with
const OPERATOR = 'sigstore.mock';
const MAX_BODY = 64 * 1024 * 1024;
const OID_SCT_LIST = '1.3.6.1.4.1.11129.2.4.2';
const DAY_MS = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------------
// Arguments

function usage(msg) {
  if (msg) process.stderr.write(`server.mjs: ${msg}\n`);
  process.stderr.write(
    'usage: node server.mjs STATE_DIR [PORT] [--clock=ISO8601] [--cert-lifetime=MINUTES] [--quiet]\n',
  );
  process.exit(2);
}

const positional = [];
const opts = { clock: undefined, certLifetimeMin: 10, quiet: false };
for (const arg of process.argv.slice(2)) {
  if (arg === '--quiet') opts.quiet = true;
  else if (arg.startsWith('--clock=')) {
    const d = new Date(arg.slice('--clock='.length));
    if (Number.isNaN(d.getTime())) usage(`bad --clock: ${arg}`);
    opts.clock = d;
  } else if (arg.startsWith('--cert-lifetime=')) {
    const n = Number(arg.slice('--cert-lifetime='.length));
    if (!Number.isInteger(n) || n < 1) usage(`bad --cert-lifetime: ${arg}`);
    opts.certLifetimeMin = n;
  } else if (arg === '-h' || arg === '--help') usage();
  else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
  else positional.push(arg);
}
if (positional.length < 1 || positional.length > 2) usage('STATE_DIR is required');
const STATE = path.resolve(positional[0]);
const PORT = positional[1] === undefined ? 0 : Number(positional[1]);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) usage(`bad port: ${positional[1]}`);

const log = (...a) => {
  if (!opts.quiet) process.stderr.write(`[sigstore-local] ${a.join(' ')}\n`);
};

// ---------------------------------------------------------------------------------------------
// Persistent key material

const KEYS = path.join(STATE, 'keys');
fs.mkdirSync(KEYS, { recursive: true, mode: 0o700 });

function writeFileAtomic(file, data, mode = 0o644) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data, { mode });
  fs.renameSync(tmp, file);
}

function loadOrCreateKey(name) {
  const file = path.join(KEYS, `${name}.key.pem`);
  if (!fs.existsSync(file)) {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    writeFileAtomic(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), 0o600);
    log(`generated ${name} key`);
  }
  const privateKey = crypto.createPrivateKey(fs.readFileSync(file));
  return { privateKey, publicKey: crypto.createPublicKey(privateKey) };
}

function loadOrCreateMeta() {
  const file = path.join(KEYS, 'meta.json');
  if (!fs.existsSync(file)) {
    // Validity starts a day before creation so a --clock slightly in the past still works.
    const created = new Date();
    const meta = {
      created: created.toISOString(),
      validFrom: new Date(created.getTime() - DAY_MS).toISOString(),
      caNotAfter: new Date(created.getTime() + 10 * 365 * DAY_MS).toISOString(),
    };
    writeFileAtomic(file, JSON.stringify(meta, null, 2) + '\n');
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

const meta = loadOrCreateMeta();
const caKeys = loadOrCreateKey('fulcio-ca');
const ctKeys = loadOrCreateKey('ctlog');
const rekorKeys = loadOrCreateKey('rekor');
const tsaKeys = loadOrCreateKey('tsa');
const webcrypto = globalThis.crypto;

async function toCryptoKeyPair({ privateKey, publicKey }) {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  return {
    privateKey: await webcrypto.subtle.importKey(
      'jwk', privateKey.export({ format: 'jwk' }), alg, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey(
      'jwk', publicKey.export({ format: 'jwk' }), alg, true, ['verify']),
  };
}

// The root certificate is made once and persisted: the mock's initializeCA would make a new one
// (same key, new serial/dates/signature) on every start, which would break the trust root.
async function loadOrCreateRootCert() {
  const file = path.join(KEYS, 'fulcio-ca.crt.pem');
  if (!fs.existsSync(file)) {
    const keys = await toCryptoKeyPair(caKeys);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: CA_NAME,
      notBefore: new Date(meta.validFrom),
      notAfter: new Date(meta.caNotAfter),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.keyCertSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
      ],
    }, webcrypto);
    writeFileAtomic(file, cert.toString('pem') + '\n');
    log('generated Fulcio root certificate');
  }
  return new x509.X509Certificate(fs.readFileSync(file, 'utf8'));
}

// The timestamp authority's certificates (a root and the signing certificate it issued), made
// once and persisted like the Fulcio root: the mock's initializeTSA makes new ones valid from
// the moment it starts, so a Sigstore started later, or with --clock in the past, would sign
// with a certificate that the trusted root does not hold or that was not valid at its clock.
const TSA_ROOT_NAME = 'CN=tsa,O=sigstore.mock';
const TSA_NAME = 'CN=tsa signing,O=sigstore.mock';
async function loadOrCreateTsaCerts() {
  const file = path.join(KEYS, 'tsa.crt.pem');
  if (!fs.existsSync(file)) {
    const keys = await toCryptoKeyPair(tsaKeys);
    const validity = {
      notBefore: new Date(meta.validFrom),
      notAfter: new Date(meta.caNotAfter),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    };
    const identifiers = [
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ];
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01', name: TSA_ROOT_NAME, keys, ...validity,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.keyCertSign, true),
        ...identifiers,
      ],
    }, webcrypto);
    const signing = await x509.X509CertificateGenerator.create({
      serialNumber: '02', subject: TSA_NAME, issuer: TSA_ROOT_NAME,
      publicKey: keys.publicKey, signingKey: keys.privateKey, ...validity,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.timeStamping], true),
        ...identifiers,
      ],
    }, webcrypto);
    writeFileAtomic(file, signing.toString('pem') + '\n' + root.toString('pem') + '\n');
    log('generated timestamp authority certificates');
  }
  const [signing, root] = fs.readFileSync(file, 'utf8').split(/(?<=-----END CERTIFICATE-----)\n+/)
    .filter((pem) => pem.includes('BEGIN')).map((pem) => new x509.X509Certificate(pem));
  return { signing, root };
}

// ---------------------------------------------------------------------------------------------
// Certificate issuance.
//
// The mock CA (CAImpl.issueCertificate) always writes the subject as a URI SAN, uses the fixed
// serial 11182004 and a 10 minute validity. Real Fulcio writes an email subject as an rfc822Name
// SAN (sigstore-rs matches emails only against those), so issuance is replaced by this copy of
// the mock's code that picks the SAN type, uses random serials and a configurable lifetime. The
// mock's Fulcio handler (token parsing, claims -> extensions) and CT log (SCT) are used as is.

const EMAIL_RE = /^[^@\s/:]+@[^@\s/:]+$/;

function curveOf(spkiDer) {
  const key = crypto.createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  const curve = key.asymmetricKeyDetails?.namedCurve;
  switch (curve) {
    case 'prime256v1': return 'P-256';
    case 'secp384r1': return 'P-384';
    case 'secp521r1': return 'P-521';
    default: throw new Error(`unsupported public key (${key.asymmetricKeyType} ${curve || ''}): ECDSA P-256/384/521 only`);
  }
}

function sctListExtension(sct) {
  const sctBytes = Buffer.from(sct); // already prefixed with its own 2-byte length
  const len = Buffer.alloc(2);
  len.writeUInt16BE(sctBytes.length);
  const list = Buffer.concat([len, sctBytes]);
  const wrapped = new asn1js.OctetString({ valueHex: list });
  return new x509.Extension(OID_SCT_LIST, false, wrapped.toBER(false));
}

function claimExtensions(extensions) {
  return extensions.map((e) => new x509.Extension(
    e.oid, false,
    e.legacy === true ? Buffer.from(e.value) : new asn1js.Utf8String({ value: e.value }).toBER(false)));
}

function makeIssuer(ca) {
  return async function issueCertificate({ publicKey, subjectAltName, extensions }) {
    const key = await ca.crypto.subtle.importKey(
      'spki', publicKey, { name: 'ECDSA', namedCurve: curveOf(publicKey) }, true, ['verify']);
    const now = ca.getCurrentTime();
    const serial = crypto.randomBytes(16);
    serial[0] = (serial[0] % 0x7f) + 1; // positive, and minimal DER (no leading zero byte)
    const san = EMAIL_RE.test(subjectAltName)
      ? { type: 'email', value: subjectAltName }
      : { type: 'url', value: subjectAltName };
    const tbs = {
      serialNumber: serial.toString('hex'),
      notBefore: now,
      notAfter: new Date(now.getTime() + opts.certLifetimeMin * 60 * 1000),
      issuer: CA_NAME,
      publicKey: key,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
      signingKey: ca.keyPair.privateKey,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.codeSigning]),
        new x509.SubjectAlternativeNameExtension([san], true),
        await x509.SubjectKeyIdentifierExtension.create(key, false, ca.crypto),
        await x509.AuthorityKeyIdentifierExtension.create(ca.keyPair.publicKey, false, ca.crypto),
        ...claimExtensions(extensions || []),
      ],
    };
    if (ca.ctLog) {
      const preCert = await x509.X509CertificateGenerator.create(tbs, ca.crypto);
      const sct = await ca.ctLog.log(preCert.rawData, await ca.issuerID);
      tbs.extensions.push(sctListExtension(sct));
    }
    const cert = await x509.X509CertificateGenerator.create(tbs, ca.crypto);
    return Buffer.from(cert.rawData);
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

const spki = (k) => k.export({ format: 'der', type: 'spki' });
const pemOf = (label, der) =>
  `-----BEGIN ${label}-----\n${der.toString('base64').match(/.{1,64}/g).join('\n')}\n-----END ${label}-----\n`;
const sha256 = (b) => crypto.createHash('sha256').update(b).digest();

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'application/json', headers = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(data), ...headers });
  res.end(data);
}
const sendError = (res, status, message) => send(res, status, { code: status, message });

// ---------------------------------------------------------------------------------------------
// Rekor entry store: the mock's TLog signs each entry (SET + a checkpoint for a one-leaf tree)
// but keeps nothing; the server keeps the entries (in memory and in STATE/rekor/entries.jsonl)
// for the GET/search endpoints, keyed by the RFC 6962 leaf hash of the body, like real Rekor.

const REKOR_DIR = path.join(STATE, 'rekor');
const ENTRIES_FILE = path.join(REKOR_DIR, 'entries.jsonl');
fs.mkdirSync(REKOR_DIR, { recursive: true });

const entries = new Map(); // uuid -> LogEntryAnon
const byLogIndex = new Map(); // logIndex -> uuid
const index = new Map(); // search key -> Set(uuid)
let lastUUID;

function leafHashHex(bodyB64) {
  return sha256(Buffer.concat([Buffer.from([0]), Buffer.from(bodyB64, 'base64')])).toString('hex');
}

// Search keys of an entry: every {algorithm, value} hash in its spec as "alg:value", and the
// sha256 of every public key / certificate it carries (as "key:<hex>").
function indexKeys(bodyB64) {
  const keys = new Set();
  let body;
  try {
    body = JSON.parse(Buffer.from(bodyB64, 'base64').toString('utf8'));
  } catch {
    return keys;
  }
  const walk = (v, parentKey) => {
    if (Array.isArray(v)) return v.forEach((x) => walk(x, parentKey));
    if (!v || typeof v !== 'object') {
      if (typeof v === 'string' && ['content', 'verifier', 'publicKey'].includes(parentKey) && v.length > 40) {
        const raw = Buffer.from(v, 'base64');
        if (raw.includes('-----BEGIN')) keys.add(`key:${sha256(raw).toString('hex')}`);
      }
      return;
    }
    if (typeof v.algorithm === 'string' && typeof v.value === 'string') {
      keys.add(`${v.algorithm.toLowerCase()}:${v.value.toLowerCase()}`);
    }
    for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(body.spec, 'spec');
  return keys;
}

function addEntry(uuid, entry, persist) {
  entries.set(uuid, entry);
  byLogIndex.set(entry.logIndex, uuid);
  for (const k of indexKeys(entry.body)) {
    if (!index.has(k)) index.set(k, new Set());
    index.get(k).add(uuid);
  }
  lastUUID = uuid;
  if (persist) fs.appendFileSync(ENTRIES_FILE, JSON.stringify({ uuid, entry }) + '\n');
}

if (fs.existsSync(ENTRIES_FILE)) {
  for (const line of fs.readFileSync(ENTRIES_FILE, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const { uuid, entry } = JSON.parse(line);
      addEntry(uuid, entry, false);
    } catch {
      // a torn last line after a crash: ignore it
    }
  }
}

const lookupUUID = (id) => {
  const s = String(id).toLowerCase();
  return entries.has(s) ? s : s.length === 80 ? (entries.has(s.slice(16)) ? s.slice(16) : undefined) : undefined;
};

// A signed checkpoint for the empty log (GET /api/v1/log before anything was logged), in the
// same note format as the mock's.
function emptyCheckpoint(origin) {
  const rootHash = sha256(Buffer.alloc(0));
  const logID = sha256(spki(rekorKeys.publicKey));
  const note = [`${origin} - 0`, '0', rootHash.toString('base64'),
    `Timestamp: ${Date.now() * 1_000_000}`, ''].join('\n');
  const sig = crypto.sign('sha256', Buffer.from(note), rekorKeys.privateKey);
  const sigLine = `\u2014 ${origin} ${Buffer.concat([logID.subarray(0, 4), sig]).toString('base64')}`;
  return { rootHash: rootHash.toString('hex'), treeSize: 0, signedTreeHead: [note, sigLine, ''].join('\n'), treeID: '0' };
}

// ---------------------------------------------------------------------------------------------
// Rekor canonicalisation. The mock's Rekor handler logs the proposed entry as sent; real Rekor
// (v1.x) logs a canonical form, and verifiers compare against that form (sigstore-js fails a
// DSSE bundle whose entry still holds `proposedContent`). So entries are canonicalised here, as
// rekor/pkg/types/{hashedrekord/v0.0.1,dsse/v0.0.1,intoto/v0.0.2} do, before the mock's TLog
// signs them. Keys and certificates are re-encoded as PEM wrapped at 64 columns, like Rekor.
// Like Rekor, DSSE envelopes are checked against their verifiers; unlike Rekor, hashedrekord
// and intoto signatures are not verified here.

function canonicalPEM(b64) {
  const text = Buffer.from(b64, 'base64').toString('utf8');
  const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) return b64; // not PEM (e.g. raw DER, minisign, ...): leave as sent
  return Buffer.from(pemOf(m[1], Buffer.from(m[2].replace(/\s+/g, ''), 'base64'))).toString('base64');
}

function keyObjectFromPEMb64(b64) {
  const text = Buffer.from(b64, 'base64').toString('utf8');
  if (text.includes('BEGIN CERTIFICATE')) return new crypto.X509Certificate(text).publicKey;
  return crypto.createPublicKey(text);
}

function dssePAE(type, payload) {
  const t = Buffer.from(type);
  return Buffer.concat([Buffer.from(`DSSEv1 ${t.length} `), t, Buffer.from(` ${payload.length} `), payload]);
}

function verifyDSSESig(keyObject, type, payload, sigB64) {
  const alg = ['ed25519', 'ed448'].includes(keyObject.asymmetricKeyType) ? null : 'sha256';
  try {
    return crypto.verify(alg, dssePAE(type, payload), keyObject, Buffer.from(sigB64, 'base64'));
  } catch {
    return false;
  }
}

const badEntry = (msg) => Object.assign(new Error(msg), { status: 400 });

function canonicalizeEntry(pe) {
  const kind = pe?.kind;
  const spec = pe?.spec;
  if (!spec || typeof spec !== 'object') throw badEntry('proposed entry has no spec');
  if (kind === 'hashedrekord') {
    if (!spec.data?.hash?.value || !spec.signature?.content || !spec.signature?.publicKey?.content) {
      throw badEntry('hashedrekord entry needs spec.data.hash, spec.signature.content and spec.signature.publicKey.content');
    }
    return {
      apiVersion: pe.apiVersion || '0.0.1',
      kind,
      spec: {
        data: { hash: { algorithm: spec.data.hash.algorithm, value: spec.data.hash.value } },
        signature: {
          content: spec.signature.content,
          publicKey: { content: canonicalPEM(spec.signature.publicKey.content) },
        },
      },
    };
  }
  if (kind === 'dsse' && spec.proposedContent) {
    const envText = spec.proposedContent.envelope;
    const env = JSON.parse(envText);
    const payload = Buffer.from(env.payload || '', 'base64');
    if (!env.signatures?.length) throw badEntry('DSSE envelope must contain 1 or more signatures');
    const verifiers = (spec.proposedContent.verifiers || []).map((v) => ({ b64: v, key: keyObjectFromPEMb64(v) }));
    const signatures = env.signatures.map((s) => {
      const v = verifiers.find((x) => verifyDSSESig(x.key, env.payloadType, payload, s.sig));
      if (!v) throw badEntry('could not verify envelope signature with any of the verifiers');
      return { signature: s.sig, verifier: canonicalPEM(v.b64) };
    }).sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
    return {
      apiVersion: pe.apiVersion || '0.0.1',
      kind,
      spec: {
        envelopeHash: { algorithm: 'sha256', value: sha256(Buffer.from(envText)).toString('hex') },
        payloadHash: { algorithm: 'sha256', value: sha256(payload).toString('hex') },
        signatures,
      },
    };
  }
  if (kind === 'intoto' && (pe.apiVersion || '') === '0.0.2' && spec.content?.envelope) {
    const c = spec.content;
    if (!c.hash) throw badEntry('missing envelope digest');
    let payloadHash = c.payloadHash;
    if (c.envelope.payload) {
      // payload is base64(base64(payload)) in intoto v0.0.2
      const inner = Buffer.from(c.envelope.payload, 'base64').toString('utf8');
      payloadHash = { algorithm: 'sha256', value: sha256(Buffer.from(inner, 'base64')).toString('hex') };
    }
    if (!payloadHash) throw badEntry('missing payload digest');
    if (!c.envelope.signatures?.length) throw badEntry('missing signatures');
    return {
      apiVersion: '0.0.2',
      kind,
      spec: {
        content: {
          envelope: { payloadType: c.envelope.payloadType, signatures: c.envelope.signatures },
          hash: c.hash,
          payloadHash,
        },
      },
    };
  }
  return pe; // other kinds/versions: logged as sent (as the mock does)
}

// PEM as real Fulcio sends it (64 columns); the mock writes the base64 on one line.
const rewrapPEM = (text) => text.replace(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----\n?/g,
  (_, label, b64) => pemOf(label, Buffer.from(b64.replace(/\s+/g, ''), 'base64')));

// ---------------------------------------------------------------------------------------------
// Timestamp requests

const OID_TSA_POLICY = '1.3.6.1.4.1.57264.2';
const HASH_OIDS = { sha256: '2.16.840.1.101.3.4.2.1', sha384: '2.16.840.1.101.3.4.2.2', sha512: '2.16.840.1.101.3.4.2.3' };

// What the mock TSA signs: the hash, its algorithm, the nonce and whether to embed the certificate.
function timestampRequest(req, body) {
  if ((req.headers['content-type'] || '').includes('json')) {
    const json = JSON.parse(body.toString());
    const algorithm = HASH_OIDS[String(json.hashAlgorithm || 'sha256').toLowerCase().replace('-', '')];
    if (!algorithm) throw Object.assign(new Error(`unsupported hash ${json.hashAlgorithm}`), { status: 400 });
    return { artifactHash: Buffer.from(json.artifactHash, 'base64'), hashAlgorithmOID: algorithm,
      nonce: json.nonce || 1, policyOID: OID_TSA_POLICY, certReq: Boolean(json.certificates) };
  }
  // TimeStampReq ::= SEQUENCE { version, messageImprint SEQUENCE { AlgorithmIdentifier,
  //   OCTET STRING }, reqPolicy OID OPTIONAL, nonce INTEGER OPTIONAL, certReq BOOLEAN DEFAULT FALSE, ... }
  const parsed = asn1js.fromBER(new Uint8Array(body).buffer);
  if (parsed.offset === -1) throw Object.assign(new Error('not a DER TimeStampReq'), { status: 400 });
  const [, imprint, ...rest] = parsed.result.valueBlock.value;
  const [algorithm, hashed] = imprint.valueBlock.value;
  const nonce = rest.find((v) => v instanceof asn1js.Integer);
  const certReq = rest.find((v) => v instanceof asn1js.Boolean);
  return {
    artifactHash: Buffer.from(hashed.valueBlock.valueHexView),
    hashAlgorithmOID: algorithm.valueBlock.value[0].valueBlock.toString(),
    nonce: nonce ? nonce.valueBlock.valueDec : 1,
    policyOID: OID_TSA_POLICY,
    certReq: certReq ? certReq.valueBlock.value : false,
  };
}

// ---------------------------------------------------------------------------------------------
// Trust material files

function writeTrustFiles(url, rootCert, tsa) {
  const rootDer = Buffer.from(rootCert.rawData);
  const rekorSpki = spki(rekorKeys.publicKey);
  const ctSpki = spki(ctKeys.publicKey);
  const logEntry = (keyDer) => ({
    baseUrl: url,
    hashAlgorithm: 'SHA2_256',
    publicKey: {
      rawBytes: keyDer.toString('base64'),
      keyDetails: 'PKIX_ECDSA_P256_SHA_256',
      validFor: { start: meta.validFrom },
    },
    logId: { keyId: sha256(keyDer).toString('base64') },
  });
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [logEntry(rekorSpki)],
    certificateAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: url,
      certChain: { certificates: [{ rawBytes: rootDer.toString('base64') }] },
      validFor: { start: rootCert.notBefore.toISOString(), end: rootCert.notAfter.toISOString() },
    }],
    ctlogs: [logEntry(ctSpki)],
    // The signing (intermediate) certificate first, as sigstore's trusted roots list chains.
    timestampAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'tsa' },
      uri: `${url}/api/v1/timestamp`,
      certChain: { certificates: [tsa.intCertificate, tsa.rootCertificate].map((der) => ({
        rawBytes: Buffer.from(der).toString('base64') })) },
      validFor: { start: meta.validFrom },
    }],
  };
  const service = { url, majorApiVersion: 1, validFor: { start: meta.validFrom }, operator: OPERATOR };
  const signingConfig = {
    mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
    caUrls: [service],
    oidcUrls: [],
    rekorTlogUrls: [service],
    tsaUrls: [{ ...service, url: `${url}/api/v1/timestamp` }],
    rekorTlogConfig: { selector: 'ANY' },
    tsaConfig: { selector: 'ANY' },
  };
  writeFileAtomic(path.join(STATE, 'trusted_root.json'), JSON.stringify(trustedRoot, null, 2) + '\n');
  writeFileAtomic(path.join(STATE, 'signing_config.json'), JSON.stringify(signingConfig, null, 2) + '\n');
  writeFileAtomic(path.join(STATE, 'fulcio_chain.pem'), pemOf('CERTIFICATE', rootDer));
  writeFileAtomic(path.join(STATE, 'rekor.pub'), pemOf('PUBLIC KEY', rekorSpki));
  writeFileAtomic(path.join(STATE, 'ctlog.pub'), pemOf('PUBLIC KEY', ctSpki));
  return trustedRoot;
}

// ---------------------------------------------------------------------------------------------
// Server

async function main() {
  const rootCert = await loadOrCreateRootCert();

  const ctlog = await initializeCTLog(ctKeys, opts.clock);
  const ca = await initializeCA(caKeys, ctlog, opts.clock);
  ca.root = rootCert; // the persisted root (same key as the one initializeCA self-signed)
  ca.issueCertificate = makeIssuer(ca);
  const fulcio = fulcioHandler(ca, { strict: true });

  // The checkpoint origin is "127.0.0.1" (no port): sigstore-js matches it against the tlog
  // baseUrl of the trusted root, which then stays valid whatever port a later start gets.
  const tlog = await initializeTLog(`http://${HOST}`, rekorKeys, opts.clock);
  // RFC 3161 timestamps, signed by a certificate of this instance's own TSA.
  const tsa = await initializeTSA(tsaKeys, opts.clock);
  // The persisted certificates in place of the mock's fresh ones (same key); the mock keeps them
  // as pkijs Certificates, whose class its own certificate carries.
  const tsaCerts = await loadOrCreateTsaCerts();
  const PkijsCertificate = tsa.intCert.constructor;
  tsa.intCert = PkijsCertificate.fromBER(new Uint8Array(tsaCerts.signing.rawData));
  tsa.rootCert = PkijsCertificate.fromBER(new Uint8Array(tsaCerts.root.rawData));
  // (rekorHandler(tlog) would JSON.parse the body and call tlog.log(); the server calls
  // tlog.log() itself, on the canonicalised entry.)

  const server = http.createServer();
  let url;
  let trustedRoot;

  // Fulcio v2 request body from a v1 request (cosign v2's legacy client: JSON with
  // publicKey.content = base64(PEM), the token in the Authorization header).
  function v1ToV2(body, authorization) {
    const m = /^Bearer\s+(.+)$/i.exec(authorization || '');
    if (!m) throw Object.assign(new Error('missing bearer token'), { status: 401 });
    const json = JSON.parse(body.toString('utf8'));
    const v2 = { credentials: { oidcIdentityToken: m[1].trim() } };
    if (json.certificateSigningRequest) {
      v2.certificateSigningRequest = Buffer.from(json.certificateSigningRequest, 'base64').toString('utf8');
    } else if (json.publicKey?.content) {
      let pem = Buffer.from(json.publicKey.content, 'base64').toString('utf8');
      if (!pem.includes('-----BEGIN')) pem = pemOf('PUBLIC KEY', Buffer.from(json.publicKey.content, 'base64'));
      v2.publicKeyRequest = { publicKey: { algorithm: json.publicKey.algorithm || 'ECDSA', content: pem },
        proofOfPossession: json.signedEmailAddress || '' };
    } else {
      throw Object.assign(new Error('request has neither publicKey nor certificateSigningRequest'), { status: 400 });
    }
    return JSON.stringify(v2);
  }

  // v2 bodies may carry the CSR as base64(PEM) (protobuf bytes); the mock wants PEM text. Real
  // Fulcio also takes the token from "Authorization: Bearer" (sigstore-go sends it there only).
  function normaliseV2(body, authorization) {
    const json = JSON.parse(body.toString('utf8'));
    if (!json.credentials?.oidcIdentityToken) {
      const m = /^Bearer\s+(.+)$/i.exec(authorization || '');
      if (!m) throw Object.assign(new Error('missing identity token (credentials.oidcIdentityToken or Authorization: Bearer)'), { status: 401 });
      json.credentials = { ...json.credentials, oidcIdentityToken: m[1].trim() };
    }
    if (json.certificateSigningRequest && !json.certificateSigningRequest.includes('-----BEGIN')) {
      json.certificateSigningRequest = Buffer.from(json.certificateSigningRequest, 'base64').toString('utf8');
    }
    return JSON.stringify(json);
  }

  async function handleFulcio(req, res, pathname, body) {
    if (pathname === '/api/v2/signingCert') {
      const r = await fulcio.fn(normaliseV2(body, req.headers.authorization));
      if (r.statusCode !== 201) return send(res, r.statusCode, r.response, 'text/plain');
      const out = JSON.parse(r.response);
      const chain = out.signedCertificateEmbeddedSct.chain;
      chain.certificates = chain.certificates.map(rewrapPEM);
      // Real Fulcio answers the v2 (gRPC-gateway) call with 200, the v1 one with 201; the mock
      // says 201, which sigstore-go rejects ("Fulcio returned 201").
      return send(res, 200, out);
    }
    // /api/v1/signingCert
    const r = await fulcio.fn(v1ToV2(body, req.headers.authorization));
    if (r.statusCode !== 201) return send(res, r.statusCode, r.response, 'text/plain');
    const chain = JSON.parse(r.response).signedCertificateEmbeddedSct.chain.certificates;
    return send(res, 201, chain.map(rewrapPEM).join(''), 'application/pem-certificate-chain');
  }

  async function handleRekorCreate(res, body) {
    let canonical;
    try {
      canonical = canonicalizeEntry(JSON.parse(body.toString('utf8')));
    } catch (e) {
      return sendError(res, 400, e.message);
    }
    // Real Rekor answers 409 + Location for an entry it already has; do the same.
    const existing = leafHashHex(Buffer.from(canonicalize(canonical)).toString('base64'));
    if (entries.has(existing)) {
      return send(res, 409,
        { code: 409, message: `An equivalent entry already exists in the transparency log with UUID ${existing}` },
        'application/json', { Location: `/api/v1/log/entries/${existing}` });
    }
    const [[, entry]] = Object.entries(await tlog.log(canonical));
    const uuid = leafHashHex(entry.body);
    addEntry(uuid, entry, true);
    return send(res, 201, { [uuid]: entry }, 'application/json',
      { Location: `/api/v1/log/entries/${uuid}`, ETag: uuid });
  }

  function handleRekorRetrieve(res, body) {
    const q = JSON.parse(body.toString('utf8'));
    const out = [];
    for (const id of q.entryUUIDs || []) {
      const u = lookupUUID(id);
      if (u) out.push({ [u]: entries.get(u) });
    }
    for (const i of q.logIndexes || []) {
      const u = byLogIndex.get(Number(i));
      if (u) out.push({ [u]: entries.get(u) });
    }
    // Search by content: a proposed entry matches the logged entry with the same canonical body.
    for (const pe of q.entries || []) {
      let u;
      try {
        u = leafHashHex(Buffer.from(canonicalize(canonicalizeEntry(pe))).toString('base64'));
      } catch {
        continue;
      }
      if (entries.has(u)) out.push({ [u]: entries.get(u) });
    }
    return send(res, 200, out);
  }

  function handleIndexRetrieve(res, body) {
    const q = JSON.parse(body.toString('utf8'));
    const found = new Set();
    const add = (k) => (index.get(k) || []).forEach((u) => found.add(u));
    if (q.hash) add(q.hash.includes(':') ? q.hash.toLowerCase() : `sha256:${q.hash.toLowerCase()}`);
    if (q.publicKey?.content) add(`key:${sha256(Buffer.from(q.publicKey.content, 'base64')).toString('hex')}`);
    return send(res, 200, [...found]);
  }

  server.on('request', async (req, res) => {
    const started = Date.now();
    res.on('finish', () => log(req.method, req.url, res.statusCode, `${Date.now() - started}ms`));
    try {
      const { pathname, searchParams } = new URL(req.url, url);
      const body = req.method === 'POST' ? await readBody(req) : Buffer.alloc(0);
      const route = `${req.method} ${pathname}`;

      switch (route) {
        // --- Fulcio
        case 'POST /api/v2/signingCert':
        case 'POST /api/v1/signingCert':
          return await handleFulcio(req, res, pathname, body);
        case 'GET /api/v1/rootCert':
          return send(res, 200, pemOf('CERTIFICATE', Buffer.from(rootCert.rawData)), 'application/pem-certificate-chain');
        case 'GET /api/v2/trustBundle':
          return send(res, 200, { chains: [{ certificates: [pemOf('CERTIFICATE', Buffer.from(rootCert.rawData))] }] });

        // --- Timestamp authority: a DER TimeStampReq (RFC 3161, as cosign sends it) or the
        // JSON request of sigstore's timestamp-authority API.
        case 'POST /api/v1/timestamp':
          return send(res, 201, await tsa.timestamp(timestampRequest(req, body)), 'application/timestamp-reply');

        // --- Rekor
        case 'POST /api/v1/log/entries':
          return await handleRekorCreate(res, body);
        case 'POST /api/v1/log/entries/retrieve':
          return handleRekorRetrieve(res, body);
        case 'POST /api/v1/index/retrieve':
          return handleIndexRetrieve(res, body);
        case 'GET /api/v1/log/publicKey':
          return send(res, 200, pemOf('PUBLIC KEY', spki(rekorKeys.publicKey)), 'application/x-pem-file');
        case 'GET /api/v1/log': {
          const last = lastUUID && entries.get(lastUUID).verification.inclusionProof;
          if (!last) return send(res, 200, { ...emptyCheckpoint(HOST), inactiveShards: [] });
          const treeID = last.checkpoint.split('\n')[0].split(' - ')[1];
          return send(res, 200, { rootHash: last.rootHash, treeSize: last.treeSize,
            signedTreeHead: last.checkpoint, treeID, inactiveShards: [] });
        }
        case 'GET /api/v1/log/entries': {
          const u = byLogIndex.get(Number(searchParams.get('logIndex')));
          return u ? send(res, 200, { [u]: entries.get(u) }) : sendError(res, 404, 'entry not found');
        }

        // --- Conveniences
        case 'GET /trusted_root.json':
          return send(res, 200, trustedRoot);
        case 'GET /healthz':
          return send(res, 200, { status: 'ok' });
        default: {
          const m = /^\/api\/v1\/log\/entries\/([0-9a-fA-F]{64}|[0-9a-fA-F]{80})$/.exec(pathname);
          if (req.method === 'GET' && m) {
            const u = lookupUUID(m[1]);
            return u ? send(res, 200, { [u]: entries.get(u) }) : sendError(res, 404, 'entry not found');
          }
          return sendError(res, 404, `no route for ${route}`);
        }
      }
    } catch (e) {
      return sendError(res, e.status || 400, e.message || String(e));
    }
  });

  server.listen(PORT, HOST, () => {
    const { port } = server.address();
    url = `http://${HOST}:${port}`;
    trustedRoot = writeTrustFiles(url, rootCert, tsa);
    const info = { url, port, state: STATE, pid: process.pid };
    writeFileAtomic(path.join(STATE, 'server.json'), JSON.stringify(info) + '\n');
    process.stdout.write(JSON.stringify(info) + '\n');
    log(`listening on ${url} (state ${STATE}${opts.clock ? `, clock frozen at ${opts.clock.toISOString()}` : ''})`);
  });

  const stop = (sig) => {
    log(`${sig}: stopping`);
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
    server.closeAllConnections?.();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`server.mjs: ${e.stack || e}\n`);
  process.exit(1);
});
