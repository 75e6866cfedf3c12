"""Mutants for the egress allow-list of the local sandbox (issue 23)."""

from tools.mutations import Mutant

EGRESS = "lambdas/logic/sandboxes/egress.py"
EGRESS_TESTS = ["tests/test_egress.py"]

MUTANTS: list[Mutant] = [
    Mutant("egress-any-host-matches", EGRESS, EGRESS_TESTS,
           find="        return host == self.host\n", replace="        return True\n", count=1,
           promise="Security model: allowed hosts"),
    Mutant("egress-wildcard-without-its-dot", EGRESS, EGRESS_TESTS,
           find="return host.endswith(self.host[1:])", replace="return host.endswith(self.host[2:])", count=1,
           promise="Security model: allowed hosts"),
    Mutant("egress-port-ignored", EGRESS, EGRESS_TESTS,
           find="return self.matches_host(host) and (self.port is None or self.port == port)",
           replace="return self.matches_host(host)", count=1,
           promise="Security model: allowed hosts"),
    Mutant("egress-private-address-after-dns-allowed", EGRESS, EGRESS_TESTS,
           find="if kind is None or self._names_address(address, port):", replace="if True:", count=1,
           promise="Security model: allowed hosts"),
    Mutant("egress-ipv4-mapped-address-not-unwrapped", EGRESS, EGRESS_TESTS,
           find="    if mapped is not None:\n        address = mapped\n", replace="", count=1,
           promise="Security model: allowed hosts"),
    Mutant("egress-audit-not-written", EGRESS, EGRESS_TESTS,
           find='out.write(json.dumps(entry) + "\\n")', replace="pass", count=1,
           promise="Security model: allowed hosts"),
    Mutant("egress-refusals-not-audited", EGRESS, EGRESS_TESTS,
           find="            self.server.audit.write(_entry(refused.host, refused.port, refused.method, REFUSED, refused.reason))\n",
           replace="", count=1, promise="Security model: allowed hosts"),
    Mutant("egress-audit-not-in-the-run-record", "pixie/local_run.py", EGRESS_TESTS,
           find='record["egress"] = egress.run_entries(pixie_home, record.get("sandboxId"), since=started)',
           replace='record["egress"] = []', count=1, promise="Security model: allowed hosts"),
    Mutant("egress-preset-not-expanded", EGRESS, EGRESS_TESTS,
           find="rules += [_parse_entry(e) for e in PRESETS[entry.lower()]]", replace="rules.append(_parse_entry(entry[1:]))",
           count=1, promise="Configuration: allow-host presets"),
    Mutant("egress-unknown-preset-accepted", EGRESS, EGRESS_TESTS,
           find="if entry.lower() not in PRESETS:", replace="if False:", count=1, promise="Configuration: allow-host presets"),
    Mutant("egress-connect-not-decided", EGRESS, EGRESS_TESTS,
           find="        decision = self.server.allow_list.decide(host, port)\n",
           replace="        decision = self.server.allow_list.decide(host, port) if method.upper() != \"CONNECT\" else Decision(True, \"any\", tuple(resolve(host, port)))\n",
           count=1, promise="Security model: allowed hosts"),
    Mutant("egress-resume-forgets-the-allow-list", "pixie/local_run.py", EGRESS_TESTS,
           find="        **_saved_allow_hosts(settings),\n", replace="", count=1, promise="CLI: resume"),
]
