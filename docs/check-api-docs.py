#!/usr/bin/env python3
"""Fails when a public symbol of include/ksafe/*.h has no doc comment.

Runs Doxygen with the project's Doxyfile into a scratch directory (XML, no
HTML) and reports, by name, every warning it gives (undocumented functions,
types, struct fields, macros, comment errors) and every enum value without
a comment (Doxygen does not warn about those). Exits 77 (meson's SKIP) when
Doxygen is not installed.

Usage: check-api-docs.py DOXYGEN|'' DOXYFILE
"""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET


def has_text(elem):
    return elem is not None and ''.join(elem.itertext()).strip() != ''


def documented(node):
    return (has_text(node.find('briefdescription'))
            or has_text(node.find('detaileddescription')))


def undocumented_enum_values(xml_dir):
    found = []
    for name in sorted(os.listdir(xml_dir)):
        if not name.endswith('.xml') or name == 'index.xml':
            continue
        try:
            root = ET.parse(os.path.join(xml_dir, name)).getroot()
        except ET.ParseError:
            continue
        for enum in root.iter('memberdef'):
            if enum.get('kind') != 'enum':
                continue
            loc = enum.find('location')
            where = ('%s:%s' % (loc.get('file'), loc.get('line'))
                     if loc is not None else name)
            for value in enum.findall('enumvalue'):
                if not documented(value):
                    found.append('%s: enum value %s of %s is not documented.'
                                 % (where, value.findtext('name'),
                                    enum.findtext('name')))
    return sorted(set(found))


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().split('\n')[-1], file=sys.stderr)
        return 2
    doxygen, doxyfile = sys.argv[1], sys.argv[2]
    if not doxygen:
        print('doxygen is not installed (Debian package doxygen): '
              'the API reference cannot be checked')
        return 77
    with tempfile.TemporaryDirectory(prefix='ksafe-api-docs-') as tmp:
        log = os.path.join(tmp, 'warnings.log')
        conf = os.path.join(tmp, 'Doxyfile')
        with open(conf, 'w') as f:
            f.write('@INCLUDE = %s\n' % doxyfile)
            f.write('OUTPUT_DIRECTORY = %s\n' % tmp)
            f.write('GENERATE_HTML = NO\nGENERATE_XML = YES\n')
            f.write('XML_OUTPUT = xml\nWARN_LOGFILE = %s\n' % log)
        run = subprocess.run([doxygen, conf], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        if run.returncode != 0:
            print(run.stdout)
            print('doxygen failed with exit status %d' % run.returncode)
            return 1
        with open(log) as f:
            problems = [line.rstrip() for line in f if line.strip()]
        problems += undocumented_enum_values(os.path.join(tmp, 'xml'))
    for p in problems:
        print(p)
    print('%d documentation problems in the public headers' % len(problems))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
