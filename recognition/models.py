"""Recognition keeps no tables of its own: it reads the galleries of faces/."""
