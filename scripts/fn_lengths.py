#!/usr/bin/env python3
"""Length of every fn (signature line to closing brace, test modules left out) under the given folders; prints
those over LIMIT, longest first. Use: scripts/fn_lengths.py 60 crates/s3batch-{engine,api,store,core,storage}/src"""
import re, sys, os
limit = int(sys.argv[1]); dirs = sys.argv[2:]
fn_re = re.compile(r'^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')
out = []
for d in dirs:
    for root, _, files in os.walk(d):
        for f in files:
            if not f.endswith('.rs'): continue
            p = os.path.join(root, f)
            lines = open(p).read().split('\n')
            in_tests = False
            for i, l in enumerate(lines):
                if re.match(r'^\s*mod tests\b', l) or re.match(r'^#\[cfg\(test\)\]', l): in_tests = True
                m = fn_re.match(l)
                if not m or in_tests: continue
                indent = m.group(1)
                # find body end: first line after i that is indent + '}' exactly
                for j in range(i, len(lines)):
                    if lines[j].rstrip().endswith(';') and j == i and '{' not in lines[j]: break
                    if lines[j] == indent + '}' or (j == i and lines[j].rstrip().endswith('}') and lines[j].count('{') == lines[j].count('}') and '{' in lines[j]):
                        n = j - i + 1
                        if n > limit: out.append((n, f"{p}:{i+1}", m.group(7)))
                        break
for n, loc, name in sorted(out, reverse=True): print(f"{name}: {n}  ({loc})")
