/* xml.h: the little XML reading S3's answers need.
 *
 * S3 answers with small, flat XML documents (errors, object lists);
 * these functions find the text of an element by its tag name, with
 * the five predefined entities and numeric references decoded.
 */

#ifndef S3_XML_H
#define S3_XML_H

#include <stdbool.h>
#include <stddef.h>

/* The text of the first <TAG> in DOC into OUT (truncated to LEN - 1
 * bytes).  Returns false if there is none.
 */
extern bool xml_text (const char *doc, const char *tag, char *out, size_t len);

/* Like xml_text, starting at *POS, which is moved past the element
 * found: call it again for the next one.
 */
extern bool xml_next (const char **pos, const char *tag, char *out, size_t len);

#endif /* S3_XML_H */
