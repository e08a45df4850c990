import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { InvalidChannelLayerInput } from './channel-layer.errors.js';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
// Fixed salt and info: keys must derive the same in every process that shares the secrets.
const SALT = Buffer.from('nest-channels-chat/channel-layer');
const INFO = Buffer.from('message encryption v1, aes-256-gcm');

/**
 * Encryption of messages at rest in Redis with rotating keys (channels_redis'
 * `symmetric_encryption_keys`): the first key seals, every key opens, so a deployment rotates by
 * prepending the new secret, then dropping the old one once no message sealed with it can be
 * left (after `expiry`).
 *
 * AES-256-GCM with a key derived from each secret by HKDF-SHA256; a sealed message is
 * base64(version | iv | tag | ciphertext), so it travels as a string like a plain one.
 */
export class MessageCipher {
  private readonly keys: readonly Buffer[];

  constructor(secrets: readonly string[]) {
    if (secrets.length === 0 || secrets.some((secret) => typeof secret !== 'string' || !secret)) {
      throw new InvalidChannelLayerInput('symmetricEncryptionKeys must be non-empty strings');
    }
    this.keys = secrets.map((secret) => Buffer.from(hkdfSync('sha256', secret, SALT, INFO, 32)));
  }

  /** Encrypts with the first key. */
  seal(plaintext: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys[0], iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), body]).toString('base64');
  }

  /** Decrypts with whichever key sealed it; throws when none did (or it was tampered with). */
  open(sealed: string): string {
    const bytes = Buffer.from(sealed, 'base64');
    if (bytes.length < 1 + IV_BYTES + TAG_BYTES || bytes[0] !== VERSION) {
      throw new Error('not a sealed channel layer message');
    }
    const iv = bytes.subarray(1, 1 + IV_BYTES);
    const tag = bytes.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const body = bytes.subarray(1 + IV_BYTES + TAG_BYTES);
    for (const key of this.keys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      } catch {
        // Wrong key: GCM's tag check failed; try the next one.
      }
    }
    throw new Error('no symmetric encryption key opens this message');
  }
}
