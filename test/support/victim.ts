// A host a forged address names, for tests that Parley sends it nothing: a UDP socket at 5060, SIP's
// default port (the one a URI without a port means), on a loopback address of its own.
import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';

export interface Victim {
  socket: Socket;
  /** Its address, 127.x.y.z, for URIs like sip:x@HOST. */
  host: string;
  /** Every datagram it got. */
  received: Buffer[];
  close(): void;
}

export async function victimSocket(): Promise<Victim> {
  for (;;) {
    const host = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
    const socket = createSocket('udp4');
    const received: Buffer[] = [];
    socket.on('message', (data) => received.push(data));
    const bound = await new Promise<boolean>((resolve) => {
      socket.once('error', () => resolve(false));
      socket.bind(5060, host, () => resolve(true));
    });
    if (bound) return { socket, host, received, close: () => socket.close() };
    socket.close();
  }
}
