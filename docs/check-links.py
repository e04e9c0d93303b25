#!/usr/bin/env python3
"""Checks the Markdown docs: README.md and docs/*.md.

Every relative link must name a file or directory that exists, and a
#fragment must name a heading of the target (GitHub's anchor rules). Every
guide in docs/ must be linked from README.md. Prints one line per problem
and exits 1 when there is any.

Usage: check-links.py SOURCE_ROOT
"""
import os
import re
import sys

LINK = re.compile(r'!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
FENCE = re.compile(r'^\s*(```|~~~)')
EXTERNAL = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


def prose_lines(text):
    """(line number, line) outside fenced code blocks, inline code removed."""
    in_fence = False
    for n, line in enumerate(text.split('\n'), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield n, re.sub(r'`[^`]*`', lambda m: 'x' * len(m.group(0)), line)


def slug(heading):
    """GitHub's anchor for a heading: rendered text, lower case, punctuation
    other than '-' and '_' dropped, spaces made '-'."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)
    text = text.replace('`', '').replace('*', '')
    text = text.strip().lower()
    text = ''.join(c for c in text if c.isalnum() or c in ' -_')
    return text.replace(' ', '-')


def anchors(path, cache={}):
    if path not in cache:
        count, found = {}, set()
        with open(path, encoding='utf-8') as f:
            text = f.read()
        in_fence = False
        for line in text.split('\n'):
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            m = None if in_fence else HEADING.match(line)
            if m:
                # a repeated heading gets -1, -2, ... appended
                base = slug(m.group(2))
                k = count.get(base, 0)
                count[base] = k + 1
                found.add(base if k == 0 else '%s-%d' % (base, k))
        cache[path] = found
    return cache[path]


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else '.')
    docs = os.path.join(root, 'docs')
    guides = sorted(f for f in os.listdir(docs) if f.endswith('.md'))
    files = ['README.md'] + ['docs/' + g for g in guides]
    problems = []
    linked_from_readme = set()
    for rel in files:
        path = os.path.join(root, rel)
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for n, line in prose_lines(text):
            for m in LINK.finditer(line):
                target = m.group(1)
                if EXTERNAL.match(target):
                    continue
                where = '%s:%d: %s' % (rel, n, target)
                file_part, _, frag = target.partition('#')
                dest = (os.path.normpath(os.path.join(os.path.dirname(path),
                                                      file_part))
                        if file_part else path)
                if not os.path.exists(dest):
                    problems.append(where + ': no such file')
                    continue
                if rel == 'README.md':
                    linked_from_readme.add(os.path.relpath(dest, root))
                if frag and dest.endswith('.md') and frag not in anchors(dest):
                    problems.append(where + ': no heading with anchor #' + frag)
    for g in guides:
        if 'docs/' + g not in linked_from_readme:
            problems.append('README.md: does not link the guide docs/' + g)
    for p in problems:
        print(p)
    print('%d files checked, %d problems' % (len(files), len(problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
