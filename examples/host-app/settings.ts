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
}

@Module({ providers: [Settings], exports: [Settings] })
export class SettingsModule {}
