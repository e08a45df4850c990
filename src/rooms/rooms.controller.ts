import { Controller, Get, Inject, NotFoundException } from '@nestjs/common';
import { RoomState, RoomSummary } from './room-state.js';

/** The token of the most rooms `GET /api/rooms` lists (`roomsApi.limit`). */
export const ROOMS_API_LIMIT = Symbol('rooms-api-limit');

/** The default of `roomsApi.limit`. */
export const ROOMS_API_DEFAULT_LIMIT = 100;

/**
 * `GET /api/rooms`: the rooms with members and their member counts (sockets), for room pickers;
 * the busiest {@link ROOMS_API_LIMIT} of them, sorted by name.
 */
@Controller('api/rooms')
export class RoomsController {
  constructor(
    private readonly rooms: RoomState,
    @Inject(ROOMS_API_LIMIT) private readonly limit: number,
  ) {}

  @Get()
  list(): Promise<RoomSummary[]> {
    return this.rooms.rooms(this.limit);
  }
}

/** What `GET /api/rooms` answers where the list is turned off (a 404 that says so). */
export const ROOMS_API_OFF = { statusCode: 404, message: 'the rooms list is turned off' } as const;

/**
 * `GET /api/rooms` where the list is turned off: 404 with {@link ROOMS_API_OFF}, so a client can
 * tell "off" from "no rooms". The runnable app serves it with `ROOMS_API=false`.
 */
@Controller('api/rooms')
export class RoomsTurnedOffController {
  @Get()
  list(): never {
    throw new NotFoundException(ROOMS_API_OFF);
  }
}
