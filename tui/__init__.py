"""descent's terminal front ends: the command line (`cli`, no Textual) and the Textual dashboard (`app`)."""
