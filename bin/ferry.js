#!/usr/bin/env node
// The ferry command: runs the compiled CLI (npm ci builds it through the prepare script).
import '../dist/controlplane/cli/main.js';
