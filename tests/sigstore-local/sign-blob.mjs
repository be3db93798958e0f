#!/usr/bin/env node
// Keyless-sign a file with @sigstore/sign against the local Sigstore (server.mjs) and print the
// Sigstore bundle (JSON) on stdout, or write it to --out.
//
//   node sign-blob.mjs --url URL --issuer ISSUER --subject SUBJECT [--dsse PAYLOAD_TYPE]
//                      [--out BUNDLE.json] FILE
//
// Without --dsse it makes a message-signature bundle over FILE (hashedrekord entry, what
// `cosign sign-blob --bundle` makes); with --dsse it wraps FILE in a DSSE envelope of that
// payload type (an in-toto attestation when FILE is an in-toto statement and the type is
// application/vnd.in-toto+json). The token comes from token.mjs's rules (see there).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { bundleToJSON } from '@sigstore/bundle';
import { DSSEBundleBuilder, FulcioSigner, MessageSignatureBundleBuilder, RekorWitness } from '@sigstore/sign';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    issuer: { type: 'string' },
    subject: { type: 'string' },
    dsse: { type: 'string' },
    out: { type: 'string' },
  },
});
if (!values.url || !values.issuer || !values.subject || positionals.length !== 1) {
  process.stderr.write('usage: node sign-blob.mjs --url URL --issuer ISSUER --subject SUBJECT [--dsse TYPE] [--out BUNDLE] FILE\n');
  process.exit(2);
}

const token = execFileSync(process.execPath, [path.join(here, 'token.mjs'), values.issuer, values.subject])
  .toString().trim();
const fetchOpts = { retry: 0, timeout: 10_000 };
const signer = new FulcioSigner({
  fulcioBaseURL: values.url,
  identityProvider: { getToken: async () => token },
  ...fetchOpts,
});
const witnesses = [new RekorWitness({ rekorBaseURL: values.url, ...fetchOpts })];
const data = fs.readFileSync(positionals[0]);

const bundle = values.dsse
  ? await new DSSEBundleBuilder({ signer, witnesses }).create({ data, type: values.dsse })
  : await new MessageSignatureBundleBuilder({ signer, witnesses }).create({ data });

const json = JSON.stringify(bundleToJSON(bundle), null, 2) + '\n';
if (values.out) fs.writeFileSync(values.out, json);
else process.stdout.write(json);
