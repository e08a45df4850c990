import { Injectable, Module } from '@nestjs/common';

/** The host's own configuration service (a stand-in for @nestjs/config's ConfigService). */
@Injectable()
export class Settings {
  readonly chatPath = '/chat/socket';
  /** Session tokens → users; a real app would ask its session store. */
  readonly sessions: Record<string, { id: string; name: string; staff?: boolean }> = {
    'token-ann': { id: 'u1', name: 'ann' },
    'token-bob': { id: 'u2', name: 'bob' },
    'token-cid': { id: 'u3', name: 'cid', staff: true },
  };
  readonly bannedWords = ['spam'];
  /** `REDIS_URL`: run the chat on Redis (layer and rooms), so several processes share it. */
  readonly redisUrl = process.env.REDIS_URL;
  readonly redisPrefix = process.env.REDIS_PREFIX ?? 'host-app';
}

@Module({ providers: [Settings], exports: [Settings] })
export class SettingsModule {}
