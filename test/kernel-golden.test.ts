import test from 'ava';
import * as iptables from '../dataplane/iptables/shell.js';
import * as nftables from '../dataplane/nftables/shell.js';
import { execaRunner } from '../dataplane/runner.js';
import { backends, renderScenario, scenarios } from './helpers/golden.js';

// Each rule set is loaded into a real kernel, in a network namespace that exists only for that command.
for (const scenario of Object.keys(scenarios)) {
  for (const backend of backends) {
    test(`kernel: the ${scenario} ${backend} rule set loads into a real kernel`, async (t) => {
      const { rendered } = await renderScenario(scenario, backend);
      // eBPF's text for the kernel is its companion table, an nft script (the other lists the maps for people).
      const language = backend === 'iptables' ? 'iptables' : 'nftables';
      const scripts = backend === 'ebpf' ? rendered.texts.filter((part) => part.text.startsWith('#!/usr/sbin/nft')) : rendered.texts;
      t.true(scripts.length > 0);
      for (const part of scripts) {
        const listed = language === 'nftables'
          ? await nftables.listAsKernelWould(execaRunner, part.text)
          : await iptables.listAsKernelWould(execaRunner, part.family as iptables.Family, part.text);
        // The kernel holds every chain the text declares.
        const declared = language === 'nftables'
          ? [...part.text.matchAll(/^\tchain (\S+) \{/gm)].map((match) => match[1]!)
          : [...part.text.matchAll(/^:(FERRY-\S+)/gm)].map((match) => match[1]!);
        t.true(declared.length >= 7, "at least the fixed chains are declared");
        for (const chain of declared) t.true(listed.includes(language === 'nftables' ? `chain ${chain} {` : `:${chain} `), chain);
      }
    });
  }
}
