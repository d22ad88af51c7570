build/obj/util.o: src/util.c src/util.h src/error.h
src/util.h:
src/error.h:
