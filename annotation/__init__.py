"""Dataset building, annotation through Label Studio, and augmentation.

`segment` splits a whole contract into clauses (the app uses the same segmenter);
`cuad` and `claudette` read the two corpora; `parties` and `obligation` find the
contract's parties and pre-label who a clause obliges; `dedup` and `splits` keep the
splits document-disjoint and leak-free; `build` writes the dataset.
"""
