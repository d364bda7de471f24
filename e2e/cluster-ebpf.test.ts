import { registerScenarios } from './suite.js';

registerScenarios('ebpf');
