import { registerScenarios } from './suite.js';

registerScenarios('iptables');
