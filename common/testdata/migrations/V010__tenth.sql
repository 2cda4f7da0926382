-- Tenth: a version C++ would read as octal 8 if written as 010.
CREATE TABLE m10 (id INT PRIMARY KEY);
INSERT INTO m10 VALUES (10);
