import { registerAgentTests } from './agent-suite.js';

registerAgentTests('iptables');
