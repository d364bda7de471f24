import { registerScenarios } from './suite.js';

registerScenarios('nftables');
