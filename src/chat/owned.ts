import type { Type } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';

/** Something the module uses, and whether the module built it (and so must close it). */
export interface Owned<T> {
  value: T;
  owned: boolean;
}

/** What a user may give for a swappable part: an instance, a class, or a factory. */
export type Source<T> = T | Type<T> | (() => T | Promise<T>);

/**
 * Builds a swappable part from what the user gave: an instance stays theirs; a class (built with
 * the module's DI), a factory's result or the fallback belong to the module.
 */
export async function buildOwned<T extends object>(
  kind: abstract new (...args: never[]) => T,
  source: Source<T> | undefined,
  fallback: () => T,
  moduleRef: ModuleRef,
): Promise<Owned<T>> {
  if (source === undefined) return { value: fallback(), owned: true };
  if (source instanceof kind) return { value: source, owned: false };
  if (typeof source !== 'function') {
    throw new TypeError(`ChatModule: expected a ${kind.name}, its class or a factory`);
  }
  if (source.prototype instanceof kind) {
    return { value: await moduleRef.create(source as Type<T>), owned: true };
  }
  const value = await (source as () => T | Promise<T>)();
  if (!(value instanceof kind)) {
    throw new TypeError(`ChatModule: the factory must return a ${kind.name}`);
  }
  return { value, owned: true };
}
