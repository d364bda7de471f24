import { registerAgentTests } from './agent-suite.js';

registerAgentTests('ebpf');
