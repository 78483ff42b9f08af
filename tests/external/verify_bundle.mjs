#!/usr/bin/env node
// Verify one cairn Sigstore bundle (v0.3, key-based, DSSE content) with @sigstore/verify.
//
// Usage: node verify_bundle.mjs BUNDLE.json PUBLIC_KEY.pem
//
// BUNDLE.json holds ONE bundle (take an element of <name>.sigstore.json with
// `jq -c '.[0]'`). PUBLIC_KEY.pem is the SPKI PEM public key: the only trust material.
// There is no transparency log, CT log or timestamp authority, so all three thresholds
// are 0. The bundle's key hint must equal base64(sha256(SPKI DER)) of the key, computed
// here independently of cairn. DSSE content needs no artifact.
//
// Modules come from $CAIRN_NODE_MODULES/node_modules (default: ./node next to this script,
// filled by `npm install --prefix tests/external/node`).
//
// Exit status: 0 verified, 1 verification failed, 2 usage or input error.

import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const modules = process.env.CAIRN_NODE_MODULES || join(here, 'node');
const require = createRequire(join(modules, 'package.json'));

function fail(code, message) {
  console.error(`verify_bundle: ${message}`);
  process.exit(code);
}

if (process.argv.length !== 4) {
  fail(2, 'usage: node verify_bundle.mjs BUNDLE.json PUBLIC_KEY.pem');
}
const [bundlePath, keyPath] = process.argv.slice(2);

let sigstoreBundle, sigstoreVerify;
try {
  sigstoreBundle = require('@sigstore/bundle');
  sigstoreVerify = require('@sigstore/verify');
} catch (e) {
  fail(2, `cannot load @sigstore/bundle and @sigstore/verify from ${modules}: ${e.message}`);
}

let bundle, key, keyId;
try {
  bundle = sigstoreBundle.bundleFromJSON(JSON.parse(readFileSync(bundlePath, 'utf8')));
  key = createPublicKey(readFileSync(keyPath, 'utf8'));
  const spki = key.export({ type: 'spki', format: 'der' });
  keyId = createHash('sha256').update(spki).digest('base64');
} catch (e) {
  fail(2, `bad input: ${e.message}`);
}

const trustedRoot = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  certificateAuthorities: [],
  timestampAuthorities: [],
  tlogs: [],
  ctlogs: [],
};
const keyFinder = (hint) => {
  if (hint !== keyId) {
    throw new sigstoreVerify.VerificationError({
      code: 'PUBLIC_KEY_ERROR',
      message: `key hint ${hint} is not the trusted key ${keyId}`,
    });
  }
  return { publicKey: key, validFor: () => true };
};

try {
  const trust = sigstoreVerify.toTrustMaterial(trustedRoot, keyFinder);
  const verifier = new sigstoreVerify.Verifier(trust, {
    tlogThreshold: 0,
    ctlogThreshold: 0,
    timestampThreshold: 0,
  });
  verifier.verify(sigstoreVerify.toSignedEntity(bundle));
} catch (e) {
  fail(1, `verification failed: ${e.code ?? ''} ${e.message}`);
}
console.log(`verified by ${keyId} (${key.asymmetricKeyType})`);
