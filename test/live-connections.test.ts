import test from 'ava';
import { liveConnections } from '../controlplane/balance/live-connections.js';

const listing = [
  'tcp      6 431999 ESTABLISHED src=10.244.1.11 dst=10.96.0.20 sport=40000 dport=80 src=10.244.1.10 dst=10.244.1.11 sport=8080 dport=40000 [ASSURED] mark=0 use=1',
  'tcp      6 431998 ESTABLISHED src=10.244.1.12 dst=10.96.0.20 sport=40001 dport=80 src=10.244.1.10 dst=10.244.1.12 sport=8080 dport=40001 [ASSURED] mark=0 use=1',
  'tcp      6 118 TIME_WAIT src=10.244.1.11 dst=10.96.0.20 sport=40002 dport=80 src=10.244.2.10 dst=10.244.1.11 sport=8080 dport=40002 [ASSURED] mark=0 use=1',
  'tcp      6 59 SYN_SENT src=10.244.1.11 dst=10.96.0.20 sport=40003 dport=80 [UNREPLIED] src=10.244.3.10 dst=10.244.1.11 sport=8080 dport=40003 mark=0 use=1',
  'udp      17 27 src=10.244.1.11 dst=10.96.0.10 sport=5353 dport=53 src=10.244.2.2 dst=10.244.1.11 sport=53 dport=5353 mark=0 use=1',
  'tcp      6 431999 ESTABLISHED src=fd00:244:0:1::b dst=fd00:96::14 sport=40000 dport=80 src=fd00:244:0:1::a dst=fd00:244:0:1::b sport=8080 dport=40000 [ASSURED] mark=0 use=1',
  'tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=22 src=10.0.0.2 dst=10.0.0.1 sport=22 dport=1 [ASSURED] mark=0 use=1',
  'conntrack v1.4.7 (conntrack-tools): 7 flow entries have been shown.',
].join('\n');

test('established TCP connections and UDP flows are counted per endpoint; closing, unanswered and un-NATed ones are not', (t) => {
  t.deepEqual(Object.fromEntries(liveConnections(listing)), {
    'tcp/10.244.1.10:8080': 2,
    'udp/10.244.2.2:53': 1,
    'tcp/[fd00:244:0:1::a]:8080': 1,
  });
});
