import dgram from 'node:dgram';
import packet, { type Answer, type Question } from 'dns-packet';

/** What the test DNS server answers to one question. */
export interface DnsReply {
  rcode?: 'NOERROR' | 'SERVFAIL' | 'NXDOMAIN';
  answers?: Answer[];
}

const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 } as const;

/** A DNS server on 127.0.0.1 UDP answering from `answer`, which the test replaces at will. */
export interface DnsServer {
  readonly address: string;
  /** Questions received, as `TYPE name`. */
  readonly queries: string[];
  /**
   * The reply to a question, or `'drop'` to leave it unanswered; a promise of either holds the
   * reply back until the test settles it (a slow target, queries held in flight).
   */
  answer: (question: Question) => Reply | Promise<Reply>;
  close(): Promise<void>;
}

type Reply = DnsReply | 'drop';

export async function startDnsServer(answer: DnsServer['answer'] = () => ({})): Promise<DnsServer> {
  const socket = dgram.createSocket('udp4');
  let closed = false;
  const server: DnsServer = {
    address: '',
    queries: [],
    answer,
    close: () => {
      closed = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
  socket.on('message', (message, remote) => {
    const query = packet.decode(message);
    const question = query.questions?.[0] as Question;
    server.queries.push(`${question.type} ${question.name}`);
    const reply = server.answer(question);
    if (reply instanceof Promise) void reply.then(send);
    else send(reply);

    function send(reply: Reply): void {
      // A reply held back past close() has nowhere to go.
      if (reply === 'drop' || closed) return;
      const response = packet.encode({
        id: query.id,
        type: 'response',
        // dns-packet takes the response code from the low bits of the flags.
        flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | RCODES[reply.rcode ?? 'NOERROR'],
        questions: query.questions,
        answers: reply.answers ?? [],
      });
      socket.send(response, remote.port, remote.address);
    }
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  (server as { address: string }).address = `127.0.0.1:${socket.address().port}`;
  return server;
}

/** A records for `name`. */
export function aRecords(name: string, ttl: number, ...addresses: string[]): DnsReply {
  return { answers: addresses.map((data) => ({ type: 'A', name, ttl, class: 'IN', data })) };
}

/** AAAA records for `name`. */
export function aaaaRecords(name: string, ttl: number, ...addresses: string[]): DnsReply {
  return { answers: addresses.map((data) => ({ type: 'AAAA', name, ttl, class: 'IN', data })) };
}
