-- Number 0009 belongs to another branch; this file only keeps the numbering
-- contiguous on the console branch and is dropped when the branches merge.
SELECT 1;
