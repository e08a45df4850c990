import { Controller, Get } from '@nestjs/common';
import { RoomState, RoomSummary } from './room-state';

/** `GET /api/rooms`: the active rooms and their member counts (sockets), for room pickers. */
@Controller('api/rooms')
export class RoomsController {
  constructor(private readonly rooms: RoomState) {}

  @Get()
  list(): Promise<RoomSummary[]> {
    return this.rooms.rooms();
  }
}
