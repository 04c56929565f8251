"""The rating files from which the TOIS study (Ferrari Dacrema et al. 2021) regenerated the
splits of two audited papers, as it copied them into its repository:

- DMF (Xue et al., IJCAI 2017): the authors' pruned Amazon Digital Music ratings,
  ``user item rating timestamp`` separated by single spaces, ids already re-indexed from 0,
  ratings 1-5, timestamps in seconds (whole days);
- NeuRec (Zhang et al., IJCAI 2018): FilmTrust (Guo et al., IJCAI 2013) as NeuRec ships it,
  ``user item rating`` separated by single spaces, ratings 0.5-4 in half steps.

Both papers treat every rating as a positive interaction.
"""
from __future__ import annotations

from pathlib import Path

from datasets.parsers.raw import RawDataset
from datasets.parsers.readers import rating_ranges, read_table, require_file

DMF_RATINGS = "Amazon_ratings_Digital_Music_pruned.txt"
FILMTRUST_RATINGS = "ratings_filmtrust.dat"
IMPLICIT = "every rating is a positive interaction, as in the paper and the TOIS study's reader"


def parse_amazon_digital_music_dmf(raw_dir: Path) -> RawDataset:
    dataset = "amazon-digital-music-dmf"
    ratings = read_table(require_file(raw_dir, DMF_RATINGS, dataset),
                         {"user": "int", "item": "int", "rating": "float", "timestamp": "int"}, sep=" ",
                         ranges=rating_ranges(dataset))
    return RawDataset(interactions=ratings, source_files=[DMF_RATINGS],
                      notes={"rating": "star rating, 1-5", "implicit": IMPLICIT,
                             "timestamp": "review time in seconds, whole days: a user's latest day may hold "
                                          "several items"})


def parse_filmtrust_neurec(raw_dir: Path) -> RawDataset:
    dataset = "filmtrust-neurec"
    ratings = read_table(require_file(raw_dir, FILMTRUST_RATINGS, dataset),
                         {"user": "int", "item": "int", "rating": "float"}, sep=" ", ranges=rating_ranges(dataset))
    return RawDataset(interactions=ratings, source_files=[FILMTRUST_RATINGS],
                      notes={"rating": "star rating, 0.5-4 in half steps", "implicit": IMPLICIT,
                             "timestamp": "none in the file"})


TOIS_REGENERATED_PARSERS = {
    "amazon-digital-music-dmf": parse_amazon_digital_music_dmf,
    "filmtrust-neurec": parse_filmtrust_neurec,
}
