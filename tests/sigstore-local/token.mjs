#!/usr/bin/env node
// Print an OIDC identity token (a JWT) that the local Fulcio (server.mjs) accepts.
//
//   node token.mjs ISSUER SUBJECT [CLAIM=VALUE ...]
//
// The local Fulcio does not verify the token's signature or audience (the mock decodes it with
// jose.decodeJwt): it takes `sub` as the certificate subject (an rfc822Name SAN when it looks like
// an email, a URI SAN otherwise) and `iss` as the OIDC issuer extensions (1.3.6.1.4.1.57264.1.1
// and .1.8). Extra claims understood by the mock become Fulcio extensions too, e.g.
// repository=org/repo ref=refs/heads/main workflow=build event_name=push sha=... (GitHub style).
//
// cosign (v2) only takes --identity-token as a raw token when it parses as an RS256-signed JWT
// (otherwise it reads it as a file name), and wants `email_verified` when `email` is set, so the
// token is RS256-signed with a throw-away key and carries email/email_verified for emails.

import crypto from 'node:crypto';

const [issuer, subject, ...extra] = process.argv.slice(2);
if (!issuer || !subject) {
  process.stderr.write('usage: node token.mjs ISSUER SUBJECT [CLAIM=VALUE ...]\n');
  process.exit(2);
}

const now = Math.floor(Date.now() / 1000);
const claims = {
  iss: issuer,
  sub: subject,
  aud: 'sigstore',
  iat: now,
  nbf: now - 60,
  exp: now + 3600,
};
if (/^[^@\s/:]+@[^@\s/:]+$/.test(subject)) {
  claims.email = subject;
  claims.email_verified = true;
}
for (const kv of extra) {
  const i = kv.indexOf('=');
  if (i < 1) {
    process.stderr.write(`token.mjs: bad claim ${kv} (want CLAIM=VALUE)\n`);
    process.exit(2);
  }
  claims[kv.slice(0, i)] = kv.slice(i + 1);
}

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingInput = `${b64url({ alg: 'RS256', typ: 'JWT', kid: 'sigstore-local' })}.${b64url(claims)}`;
const signature = crypto.sign('sha256', Buffer.from(signingInput), privateKey).toString('base64url');
process.stdout.write(`${signingInput}.${signature}\n`);
