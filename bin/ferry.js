#!/usr/bin/env node
// The ferry command: runs the bundled CLI (npm ci builds it through the prepare script; scripts/bundle.mjs).
import '../dist/cli/ferry.js';
