// The Node.js flags the shipped agent runs with: deploy/systemd/ferry.service and the image's
// deploy/image/entrypoint.sh pass them (tests hold both to this list), and `npm run bench` runs the
// agent's steps with them. V8's young generation at half its default size (semi-spaces of 8 MB, not
// 16): the agent's peak RSS at 10,000 Services × 10 is about 30 MB lower (225–237 MB against 263–265,
// by hand), with no full sync slower beyond this machine's noise. A command-line flag: V8 sizes the
// young generation when the process starts (v8.setFlagsFromString later changes nothing).
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
