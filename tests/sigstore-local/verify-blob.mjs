#!/usr/bin/env node
// Verify a Sigstore bundle over a file with @sigstore/verify against a trusted_root.json.
// Exit 0 and print the signer identity as JSON when valid; exit 1 with the error otherwise.
//
//   node verify-blob.mjs --trusted-root STATE/trusted_root.json --bundle BUNDLE.json
//                        [--subject SAN] [--issuer ISSUER] FILE
//
// FILE is the signed artifact (message-signature bundles) or is ignored (DSSE bundles: the
// payload is in the envelope).

import fs from 'node:fs';
import { parseArgs } from 'node:util';

import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'trusted-root': { type: 'string' },
    bundle: { type: 'string' },
    subject: { type: 'string' },
    issuer: { type: 'string' },
  },
});
if (!values['trusted-root'] || !values.bundle || positionals.length > 1) {
  process.stderr.write('usage: node verify-blob.mjs --trusted-root FILE --bundle FILE [--subject SAN] [--issuer ISS] [FILE]\n');
  process.exit(2);
}

try {
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(values['trusted-root'], 'utf8')));
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(values.bundle, 'utf8')));
  const data = positionals[0] ? fs.readFileSync(positionals[0]) : undefined;
  const verifier = new Verifier(toTrustMaterial(root), { tlogThreshold: 1, ctlogThreshold: 1 });
  const policy = {};
  if (values.subject) policy.subjectAlternativeName = values.subject;
  if (values.issuer) policy.extensions = { issuer: values.issuer };
  const signer = verifier.verify(toSignedEntity(bundle, data), policy);
  process.stdout.write(JSON.stringify({
    verified: true,
    subjectAlternativeName: signer.identity?.subjectAlternativeName,
    issuer: signer.identity?.extensions?.issuer,
  }) + '\n');
} catch (e) {
  process.stderr.write(`verification failed: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
  process.exit(1);
}
